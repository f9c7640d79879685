"""The policy secret-inputs-are-secret (infra/policies/secret_inputs.py), driven through the pack
with hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

import pytest
from pulumi_policy import EnforcementLevel

from infra.core import names
from infra.core import resource_types as T
from tests.policies.support import (
    GENERIC_DYNAMIC,
    MODAL_SECRET_TYPE,
    UNKNOWN_STRING,
    check,
    context,
    mark_secret,
    pack_policies,
    secret,
)


def github_secret(value: object) -> dict:
    return {
        "repository": "rentagpu",
        "environment": "prod",
        "secretName": "MODAL_TOKEN_ID",
        "value": value,
    }


def modal_secret(values: dict, secret_paths: tuple[str, ...] = ()) -> dict:
    props = {
        "environment_name": "prod",
        "secret_name": names.RUNTIME_SECRET_NAME,
        "values": values,
        "required_keys": sorted(values),
    }
    return mark_secret(props, secret_paths)


CREDENTIALS = {"AWS_ROLE_ARN": "arn:aws:iam::1:role/x", "AWS_REGION": "eu-west-1"}


class TestSecretInputsAreSecret:
    policy = "secret-inputs-are-secret"

    def test_the_policy_runs_in_the_remediation_pass_and_reports_as_mandatory(self) -> None:
        policy = pack_policies(context())[self.policy]
        # REMEDIATE is what makes the engine call `remediate`, where secret marks are visible;
        # the SDK and the engine report its violations as mandatory.
        assert policy.enforcement_level is EnforcementLevel.REMEDIATE
        assert policy.has_remediation()

    @pytest.mark.parametrize(
        ("typ", "props"),
        [
            (T.GITHUB_ENVIRONMENT_SECRET, github_secret(secret("tok-123"))),
            (
                T.GITHUB_REPOSITORY_SECRET,
                {"repository": "r", "secretName": "X", "value": secret("v")},
            ),
            (
                MODAL_SECRET_TYPE,
                modal_secret(CREDENTIALS, ("values.AWS_ROLE_ARN", "values.AWS_REGION")),
            ),
            (MODAL_SECRET_TYPE, modal_secret(CREDENTIALS, ("values",))),
            (GENERIC_DYNAMIC, modal_secret(CREDENTIALS, ("values",))),
            # a secret value still unknown during a preview is still marked secret
            (T.GITHUB_ENVIRONMENT_SECRET, github_secret(secret(UNKNOWN_STRING))),
        ],
    )
    def test_values_marked_secret_pass(self, typ, props) -> None:
        assert check(self.policy, typ, props) == []

    def test_a_github_environment_secret_from_a_plain_value_is_refused_without_echoing_it(
        self,
    ) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT_SECRET, github_secret("tok-123"))
        assert "MODAL_TOKEN_ID" in message and "'prod'" in message
        assert "pulumi.Output.secret" in message
        assert "tok-123" not in message

    def test_a_repository_secret_from_a_plain_value_is_refused(self) -> None:
        props = {"repository": "r", "secretName": "RENTAGPU_DEV_MODAL_READ_TOKEN_ID", "value": "v"}
        (message,) = check(self.policy, T.GITHUB_REPOSITORY_SECRET, props)
        assert "RENTAGPU_DEV_MODAL_READ_TOKEN_ID" in message

    def test_a_modal_secret_with_one_plain_value_names_the_key_not_the_value(self) -> None:
        props = modal_secret(CREDENTIALS, ("values.AWS_REGION",))
        (message,) = check(self.policy, MODAL_SECRET_TYPE, props)
        assert "AWS_ROLE_ARN" in message and "AWS_REGION" not in message.split("for", 1)[1]
        assert "arn:aws:iam::1:role/x" not in message

    def test_an_untyped_dynamic_modal_secret_with_no_marks_is_refused(self) -> None:
        (message,) = check(self.policy, GENERIC_DYNAMIC, modal_secret(CREDENTIALS))
        assert "Modal secret 'rentagpu-runtime'" in message

    def test_without_the_remediation_pass_it_fails_closed(self) -> None:
        # As when someone sets this policy to 'mandatory' in policy config: no marks reach it.
        policy = pack_policies(context())[self.policy]
        reported: list[str] = []
        from tests.policies.support import analysis_args

        args = analysis_args(T.GITHUB_ENVIRONMENT_SECRET, "s", github_secret(secret("x")))
        policy.validate(args, lambda message, _urn=None: reported.append(message))
        assert len(reported) == 1 and "enforcement level 'remediate'" in reported[0]

    def test_other_resources_are_not_its_business(self) -> None:
        assert check(self.policy, T.AWS_BUCKET, {"bucket": "b"}) == []
