"""The policy stacks-share-nothing (infra/policies/cross_stack.py), offline, across stacks, driven
through the pack with hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

from infra.core import names
from infra.core import resource_types as T
from infra.policies.cross_stack import (
    SHARED_CREDENTIAL_POLICY,
    check_stacks_share_no_credential,
    check_stacks_share_nothing,
)
from infra.policies.model import Resource
from tests.policies.support import (
    GENERIC_DYNAMIC,
    MODAL_SECRET_TYPE,
)


def r(typ: str, logical_name: str, **props: object) -> Resource:
    return Resource(typ, logical_name, props)


class TestStacksShareNothing:
    def test_per_environment_names_do_not_collide(self) -> None:
        stacks = {
            env: [
                r(T.AWS_ROLE, f"{env}-deploy-role", name=names.role_name(env, "deploy")),
                r(
                    MODAL_SECRET_TYPE,
                    f"{env}-secret",
                    environment_name=env,
                    secret_name="rentagpu-runtime",
                    values={},
                ),
                r(
                    T.GITHUB_ENVIRONMENT,
                    f"{env}-environment",
                    repository="rentagpu",
                    environment=env,
                ),
            ]
            for env in ("dev", "prod")
        }
        assert check_stacks_share_nothing(stacks) == []

    def test_a_shared_role_is_reported_with_both_declarations(self) -> None:
        stacks = {
            "dev": [r(T.AWS_ROLE, "dev-deploy-role", name="rentagpu-deploy")],
            "prod": [r(T.AWS_ROLE, "prod-deploy-role", name="rentagpu-deploy")],
        }
        (violation,) = check_stacks_share_nothing(stacks)
        assert violation.policy == "stacks-share-nothing" and violation.level == "mandatory"
        assert violation.resource == "dev:dev-deploy-role / prod:prod-deploy-role"
        assert "IAM role 'rentagpu-deploy'" in violation.message

    def test_a_shared_modal_secret_environment_or_account_singleton_is_reported(self) -> None:
        def both(resource: Resource) -> dict:
            return {"dev": [resource], "prod": [resource]}

        shared_secret = r(GENERIC_DYNAMIC, "s", environment_name="main", secret_name="x", values={})
        assert "Modal secret 'main/x'" in check_stacks_share_nothing(both(shared_secret))[0].message
        provider = r(
            T.AWS_OIDC_PROVIDER,
            "github-actions-oidc",
            url="https://token.actions.githubusercontent.com",
        )
        assert "ownsAccountSingletons" in check_stacks_share_nothing(both(provider))[0].message
        github_env = r(T.GITHUB_ENVIRONMENT, "e", repository="rentagpu", environment="prod")
        assert check_stacks_share_nothing(both(github_env))


class TestStacksShareNoCredential:
    """check_stacks_share_no_credential: a Modal service user or token used by both stacks."""

    def test_the_rendered_stacks_share_no_credential(self, renderings) -> None:
        from infra.tools.plan import evaluate_stacks

        assert evaluate_stacks([renderings["dev"], renderings["prod"]]) == []

    def test_one_service_user_in_both_stacks_is_reported(self) -> None:
        """Path 3 of issue 10: both example stacks made `ci-deployer` a contributor, and a
        service user has one token, so dev's (readable from any branch) deployed into prod."""
        from infra.tools.offline import render
        from infra.tools.plan import evaluate_stacks
        from tests.stacks import stack_config

        shared = {"modalServiceUserRoles": {"ci-deployer": "contributor"}}
        crossed = [
            v
            for v in evaluate_stacks(
                [render(stack_config("dev", **shared)), render(stack_config("prod", **shared))]
            )
            if v.policy == SHARED_CREDENTIAL_POLICY
        ]
        (violation,) = crossed
        assert "Modal service user 'ci-deployer' is used by the dev and prod stacks" in (
            violation.message
        )
        assert violation.resource == "dev:dev-modal-environment / prod:prod-modal-environment"

    def test_one_adopted_token_in_both_stacks_is_reported_without_its_value(self) -> None:
        from infra.tools.offline import render
        from infra.tools.plan import evaluate_stacks
        from tests.stacks import FALLBACK_TOKEN, PLANTED, stack_config

        crossed = evaluate_stacks(
            [
                render(stack_config("dev", **FALLBACK_TOKEN)),
                render(stack_config("prod", **FALLBACK_TOKEN)),
            ]
        )
        (violation,) = [v for v in crossed if v.policy == SHARED_CREDENTIAL_POLICY]
        assert "Modal token rentagpu:modalTokenId is used by the dev and prod stacks" in (
            violation.message
        )
        for value in PLANTED.values():
            assert value not in violation.message and value not in violation.resource

    def test_no_access_is_not_a_shared_grant(self) -> None:
        stacks = {
            env: [
                r(
                    MODAL_SECRET_TYPE.replace("ModalSecret", "ModalEnvironment"),
                    f"{env}-modal-environment",
                    environment_name=env,
                    service_user_roles={"old-bot": "no-access"},
                )
            ]
            for env in ("dev", "prod")
        }
        assert check_stacks_share_no_credential(stacks) == []
