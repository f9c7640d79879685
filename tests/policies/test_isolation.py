"""The policy environment-isolation (infra/policies/isolation.py), driven through the pack with
hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

import pytest

from infra.core import resource_types as T
from tests.policies.support import (
    GENERIC_DYNAMIC,
    MODAL_ENVIRONMENT_TYPE,
    MODAL_SECRET_TYPE,
    check,
    context,
)


class TestEnvironmentIsolation:
    policy = "environment-isolation"

    @pytest.mark.parametrize(
        ("typ", "props"),
        [
            (T.AWS_ROLE, {"name": "rentagpu-prod-deploy", "path": "/rentagpu/prod/"}),
            (T.AWS_POLICY, {"name": "rentagpu-prod-runtime-boundary", "path": "/rentagpu/prod/"}),
            (T.GITHUB_ENVIRONMENT_SECRET, {"environment": "prod", "secretName": "X"}),
            (T.GITHUB_ENVIRONMENT, {"environment": "prod-readonly"}),
            (
                T.GITHUB_ENVIRONMENT_SECRET,
                {"environment": "prod-readonly", "secretName": "MODAL_READ_TOKEN_ID"},
            ),
            (
                T.GITHUB_ENVIRONMENT_VARIABLE,
                {"environment": "prod-readonly", "variableName": "AWS_DRIFT_ROLE_ARN"},
            ),
            (T.GITHUB_DEPLOYMENT_POLICY, {"environment": "prod-readonly", "branchPattern": "main"}),
            (MODAL_ENVIRONMENT_TYPE, {"environment_name": "prod", "restricted": True}),
            (MODAL_SECRET_TYPE, {"environment_name": "prod", "secret_name": "s", "values": {}}),
            (T.MODAL_BUDGET, {"environment_name": "prod", "monthly_budget_dollars": 500}),
        ],
    )
    def test_names_that_carry_the_stack_environment_pass(self, typ, props) -> None:
        assert check(self.policy, typ, props) == []

    @pytest.mark.parametrize(
        ("typ", "props", "shown"),
        [
            (
                T.AWS_ROLE,
                {"name": "rentagpu-dev-deploy", "path": "/rentagpu/prod/"},
                "'rentagpu-dev-deploy'",
            ),
            (
                T.AWS_ROLE,
                {"name": "rentagpu-deploy", "path": "/rentagpu/prod/"},
                "'rentagpu-deploy'",
            ),
            (T.AWS_ROLE, {"name": "rentagpu-prod-deploy"}, "path '/'"),
            (
                T.AWS_ROLE,
                {"name": "rentagpu-production-deploy", "path": "/rentagpu/prod/"},
                "production",
            ),
            (T.GITHUB_ENVIRONMENT, {"environment": "dev"}, "GitHub environment 'dev'"),
            (
                T.GITHUB_ENVIRONMENT,
                {"environment": "dev-readonly"},
                "GitHub environment 'dev-readonly'",
            ),
            (MODAL_ENVIRONMENT_TYPE, {"environment_name": "main", "restricted": True}, "'main'"),
            (
                GENERIC_DYNAMIC,
                {"environment_name": "dev", "secret_name": "s", "values": {}},
                "'dev'",
            ),
            (T.MODAL_BUDGET, {"environment_name": "dev", "monthly_budget_dollars": 500}, "'dev'"),
            (
                GENERIC_DYNAMIC,
                {"environment_name": "dev", "monthly_budget_dollars": 500},
                "'dev'",
            ),
        ],
    )
    def test_names_of_another_or_no_environment_are_refused(self, typ, props, shown) -> None:
        (message,) = check(self.policy, typ, props)
        assert shown in message and "must carry 'prod'" in message

    def test_a_role_without_an_explicit_name_is_refused(self) -> None:
        (message,) = check(self.policy, T.AWS_ROLE, {"path": "/rentagpu/prod/"})
        assert "no explicit IAM role name" in message

    @pytest.mark.parametrize(
        "typ", [T.GITHUB_ENVIRONMENT, T.GITHUB_ENVIRONMENT_SECRET, T.GITHUB_DEPLOYMENT_POLICY]
    )
    def test_prod_readonly_in_the_dev_stack_is_refused(self, typ) -> None:
        (message,) = check(self.policy, typ, {"environment": "prod-readonly"}, context("dev"))
        assert "GitHub environment 'prod-readonly'" in message and "must carry 'dev'" in message
