"""The policy oidc-trust-pinned (infra/policies/oidc_trust.py), driven through the pack with
hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

import json

import pytest

from infra.core import names
from infra.core import resource_types as T
from infra.stages.aws import iam
from tests.policies.support import (
    GITHUB_PROVIDER,
    MODAL_PROVIDER,
    UNKNOWN_STRING,
    check,
    check_stack,
    context,
    doc,
)


def role(trust: dict | str, name: str = "rentagpu-prod-deploy") -> dict:
    return {
        "name": name,
        "path": names.iam_path("prod"),
        "assumeRolePolicy": trust if isinstance(trust, str) else doc(trust),
    }


def github_trust_with(
    operator: str, subject: object, audience: object = "sts.amazonaws.com"
) -> dict:
    host = names.GITHUB_OIDC_HOST
    condition: dict = {"StringEquals": {f"{host}:aud": audience}}
    condition.setdefault(operator, {})[f"{host}:sub"] = subject
    return iam._document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": GITHUB_PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }
    )


OWNER_ID, REPO_ID = 4242, 777
ID_PREFIX = f"repository_owner_id:{OWNER_ID}:repository_id:{REPO_ID}"


def trust_for(context: str) -> dict:
    return iam.github_trust(GITHUB_PROVIDER, OWNER_ID, REPO_ID, context)


MODAL_TRUST = iam.modal_runtime_trust(MODAL_PROVIDER, "ac-acme0workspace1", "prod", "app", "fn")


class TestOidcTrustPinned:
    policy = "oidc-trust-pinned"

    @pytest.mark.parametrize(
        ("trust", "name"),
        [
            (trust_for("environment:prod"), names.role_name("prod", "deploy")),
            (trust_for(names.PULL_REQUEST_CONTEXT), names.role_name("prod", "preview")),
            (trust_for("environment:prod-readonly"), names.role_name("prod", "drift")),
            (trust_for(names.MAIN_BRANCH_CONTEXT), names.role_name("prod", "drift")),
            (MODAL_TRUST, names.role_name("prod", "runtime")),
        ],
        ids=["deploy", "preview", "drift-prod-readonly", "drift-main", "modal-runtime"],
    )
    def test_the_project_trust_builders_pass(self, trust, name) -> None:
        assert check(self.policy, T.AWS_ROLE, role(trust, name)) == []

    def test_a_role_without_federation_is_not_its_business(self) -> None:
        trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}}]}
        assert check(self.policy, T.AWS_ROLE, role(trust)) == []

    def test_an_unknown_trust_during_preview_is_left_for_up(self) -> None:
        assert check(self.policy, T.AWS_ROLE, role(UNKNOWN_STRING)) == []

    @pytest.mark.parametrize(
        ("operator", "subject"),
        [
            ("StringLike", "repo:acme-ml/*"),
            ("StringLike", f"{ID_PREFIX}:*"),
            ("StringLike", "repository_owner_id:4242:*"),
            ("StringEquals", f"{ID_PREFIX}:ref:refs/heads/feature"),
            ("StringEquals", "*"),
            # GitHub's default, name-based forms: they change with the repository's history.
            ("StringEquals", "repo:acme-ml/rentagpu:environment:prod"),
            ("StringEquals", "repo:acme-ml@1/rentagpu@2:environment:prod"),
        ],
    )
    def test_a_github_subject_wider_than_one_environment_is_refused(
        self, operator, subject
    ) -> None:
        messages = check(self.policy, T.AWS_ROLE, role(github_trust_with(operator, subject)))
        assert any("never a wildcard or a name-based" in m for m in messages), messages

    def test_the_prod_drift_role_may_trust_prod_readonly(self) -> None:
        trust = github_trust_with("StringEquals", f"{ID_PREFIX}:environment:prod-readonly")
        assert check(self.policy, T.AWS_ROLE, role(trust, "rentagpu-prod-drift")) == []

    @pytest.mark.parametrize(
        ("operator", "subject"),
        [
            ("StringEquals", f"{ID_PREFIX}:environment:prod-readonly*"),
            ("StringLike", f"{ID_PREFIX}:environment:prod-readonly*"),
            ("StringLike", f"{ID_PREFIX}:environment:prod-*"),
            ("StringEquals", f"{ID_PREFIX}:environment:prod-readonly?"),
        ],
    )
    def test_a_wildcard_readonly_environment_is_refused(self, operator, subject) -> None:
        trust = github_trust_with(operator, subject)
        messages = check(self.policy, T.AWS_ROLE, role(trust, "rentagpu-prod-drift"))
        assert any("never a wildcard" in m for m in messages), messages

    @pytest.mark.parametrize(
        ("environment", "stack"),
        [
            ("dev-readonly", "prod"),
            ("prod-readonly", "dev"),
            ("prod-readonly2", "prod"),
            ("prod-staging", "prod"),
            ("readonly", "prod"),
            ("prod-readonly-readonly", "prod"),
        ],
    )
    def test_another_stack_s_or_another_suffix_s_environment_is_refused(
        self, environment, stack
    ) -> None:
        trust = github_trust_with("StringEquals", f"{ID_PREFIX}:environment:{environment}")
        props = role(trust, f"rentagpu-{stack}-drift")
        (message,) = check(self.policy, T.AWS_ROLE, props, context(stack))
        assert f"trusts environment '{environment}' from the {stack} stack" in message
        assert f"'{stack}'" in message
        if stack == "prod":
            assert "'prod-readonly' for read-only roles" in message

    def test_dev_has_no_readonly_environment_to_trust(self) -> None:
        # the program creates none for dev: GitHub would create it unprotected on first use
        trust = github_trust_with("StringEquals", f"{ID_PREFIX}:environment:dev-readonly")
        props = role(trust, "rentagpu-dev-drift")
        (message,) = check(self.policy, T.AWS_ROLE, props, context("dev"))
        assert "only its own environment ('dev')" in message

    def test_the_deploy_role_never_trusts_the_readonly_environment(self) -> None:
        # prod-readonly has no required reviewers: a deploy role trusting it skips them.
        trust = github_trust_with("StringEquals", f"{ID_PREFIX}:environment:prod-readonly")
        (message,) = check(self.policy, T.AWS_ROLE, role(trust, names.role_name("prod", "deploy")))
        assert "assume the deploy role" in message and "'prod'" in message

    def test_a_trust_without_sub_is_refused(self) -> None:
        trust = trust_for("environment:prod")
        del trust["Statement"][0]["Condition"]["StringEquals"][f"{names.GITHUB_OIDC_HOST}:sub"]
        (message,) = check(self.policy, T.AWS_ROLE, role(trust))
        assert "no `token.actions.githubusercontent.com:sub` condition" in message

    @pytest.mark.parametrize("operator", ["StringLike", None])
    def test_an_audience_not_pinned_with_string_equals_is_refused(self, operator) -> None:
        trust = trust_for("environment:prod")
        condition = trust["Statement"][0]["Condition"]
        audience = condition["StringEquals"].pop(f"{names.GITHUB_OIDC_HOST}:aud")
        if operator:
            condition[operator] = {f"{names.GITHUB_OIDC_HOST}:aud": audience}
        messages = check(self.policy, T.AWS_ROLE, role(trust))
        assert any("does not pin `token.actions.githubusercontent.com:aud`" in m for m in messages)

    def test_another_environment_is_refused(self) -> None:
        dev_env = trust_for("environment:dev")
        (message,) = check(self.policy, T.AWS_ROLE, role(dev_env))
        assert "trusts environment 'dev' from the prod stack" in message

    @pytest.mark.parametrize(
        "subject",
        [
            "modal:workspace_id:ac-acme0workspace1:environment_name:prod:app_name:*"
            ":function_name:fn:container_id:*",
            "modal:workspace_id:ac-acme0workspace1:*",
            "modal:workspace_id:ac-acme0workspace1:environment_name:prod:app_name:app"
            ":function_name:fn:container_id:ta-*",
        ],
    )
    def test_a_modal_subject_with_a_wildcard_beyond_the_container_id_is_refused(
        self, subject
    ) -> None:
        trust = json.loads(json.dumps(MODAL_TRUST))
        trust["Statement"][0]["Condition"]["StringLike"][f"{names.MODAL_OIDC_HOST}:sub"] = subject
        (message,) = check(self.policy, T.AWS_ROLE, role(trust, "rentagpu-prod-runtime"))
        assert "container_id:*` as the only wildcard" in message

    def test_a_role_anyone_may_assume_is_refused(self) -> None:
        trust = {
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ]
        }
        (message,) = check(self.policy, T.AWS_ROLE, role(trust))
        assert "any AWS principal" in message


class TestGitHubSubjectsNameOneRepository:
    policy = "github-subjects-name-one-repository"

    def test_every_role_naming_the_same_repository_passes(self) -> None:
        resources = [
            (T.AWS_ROLE, "deploy", role(trust_for("environment:prod"))),
            (T.AWS_ROLE, "drift", role(trust_for("environment:prod-readonly"))),
            (T.AWS_ROLE, "runtime", role(MODAL_TRUST, "rentagpu-prod-runtime")),
        ]
        assert check_stack(self.policy, resources) == []

    def test_a_role_trusting_another_repository_is_refused(self) -> None:
        other = iam.github_trust(GITHUB_PROVIDER, OWNER_ID, REPO_ID + 1, "environment:prod")
        resources = [
            (T.AWS_ROLE, "deploy", role(trust_for("environment:prod"))),
            (T.AWS_ROLE, "drift", role(other, "rentagpu-prod-drift")),
        ]
        ((_, message),) = check_stack(self.policy, resources)
        assert "more than one repository" in message and "drift" in message
