"""The policy prod-environment-protected and prod-deploys-from-main-only
(infra/policies/github_environments.py), driven through the pack with hand-built validation args
(see tests/policies/support.py)."""

from __future__ import annotations

import pytest

from infra.core import resource_types as T
from tests.policies.support import (
    check,
    check_stack,
    context,
)


def environment(name: str = "prod", **overrides: object) -> dict:
    props: dict = {
        "repository": "rentagpu",
        "environment": name,
        "reviewers": [{"users": [101.0, 102.0], "teams": []}],
        "preventSelfReview": True,
        "canAdminsBypass": False,
        "waitTimer": 0.0,
        "deploymentBranchPolicy": {"customBranchPolicies": True, "protectedBranches": False},
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not None}


def readonly_environment(**overrides: object) -> dict:
    """prod-readonly as the program declares it: main only, no admin bypass, no reviewers."""
    return environment("prod-readonly", reviewers=None, preventSelfReview=False, **overrides)


class TestProdEnvironmentProtected:
    policy = "prod-environment-protected"

    def test_a_protected_prod_environment_passes(self) -> None:
        assert check(self.policy, T.GITHUB_ENVIRONMENT, environment()) == []

    def test_a_team_alone_is_a_reviewer(self) -> None:
        props = environment(reviewers=[{"users": [], "teams": [7.0]}])
        assert check(self.policy, T.GITHUB_ENVIRONMENT, props) == []

    def test_dev_needs_no_reviewers(self) -> None:
        props = environment("dev", reviewers=None, preventSelfReview=False)
        assert check(self.policy, T.GITHUB_ENVIRONMENT, props, context("dev")) == []

    @pytest.mark.parametrize("reviewers", [None, [], [{"users": [], "teams": []}]])
    def test_prod_without_reviewers_is_refused(self, reviewers) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, environment(reviewers=reviewers))
        assert "no required reviewers" in message and "rentagpu:reviewers" in message

    def test_self_review_is_refused(self) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, environment(preventSelfReview=False))
        assert "prevent_self_review=True" in message

    @pytest.mark.parametrize("bypass", [True, None])  # None: left to the provider's default, true
    def test_admin_bypass_is_refused(self, bypass) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, environment(canAdminsBypass=bypass))
        assert "can_admins_bypass=False" in message

    @pytest.mark.parametrize(
        "branch_policy",
        [None, {"customBranchPolicies": False, "protectedBranches": True}],
    )
    def test_any_branch_may_deploy_is_refused(self, branch_policy) -> None:
        props = environment(deploymentBranchPolicy=branch_policy)
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, props)
        assert "custom_branch_policies=True" in message

    def test_every_gap_is_reported_at_once(self) -> None:
        props = environment(reviewers=[], preventSelfReview=False, canAdminsBypass=True)
        assert len(check(self.policy, T.GITHUB_ENVIRONMENT, props)) == 3

    def test_prod_readonly_needs_no_reviewers(self) -> None:
        assert check(self.policy, T.GITHUB_ENVIRONMENT, readonly_environment()) == []

    @pytest.mark.parametrize("bypass", [True, None])
    def test_prod_readonly_with_admin_bypass_is_refused(self, bypass) -> None:
        props = readonly_environment(canAdminsBypass=bypass)
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, props)
        assert "'prod-readonly'" in message and "can_admins_bypass=False" in message

    @pytest.mark.parametrize(
        "branch_policy",
        [None, {"customBranchPolicies": False, "protectedBranches": True}],
    )
    def test_prod_readonly_open_to_any_branch_is_refused(self, branch_policy) -> None:
        props = readonly_environment(deploymentBranchPolicy=branch_policy)
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, props)
        assert "'prod-readonly'" in message and "custom_branch_policies=True" in message


def deployment_policy(
    pattern: str, name: str | None = None, environment_name: str = "prod", **extra: str
) -> tuple:
    props = {
        "repository": "rentagpu",
        "environment": environment_name,
        "branchPattern": pattern,
        **extra,
    }
    return (T.GITHUB_DEPLOYMENT_POLICY, name or f"{environment_name}-from-{pattern}", props)


PROD_ENVIRONMENT = (T.GITHUB_ENVIRONMENT, "prod-environment", environment())
READONLY_ENVIRONMENT = (T.GITHUB_ENVIRONMENT, "prod-readonly-environment", readonly_environment())
# prod-readonly, main only: what every prod stack also declares.
READONLY = [READONLY_ENVIRONMENT, deployment_policy("main", environment_name="prod-readonly")]


class TestProdDeploysFromMainOnly:
    policy = "prod-deploys-from-main-only"

    def test_main_only_passes(self) -> None:
        resources = [PROD_ENVIRONMENT, deployment_policy("main"), *READONLY]
        assert check_stack(self.policy, resources) == []

    def test_a_dev_stack_needs_no_prod_environment(self) -> None:
        dev_env = (T.GITHUB_ENVIRONMENT, "dev-environment", environment("dev"))
        assert check_stack(self.policy, [dev_env], context("dev")) == []

    def test_no_deployment_policy_is_refused_at_the_environment(self) -> None:
        ((at, message),) = check_stack(self.policy, [PROD_ENVIRONMENT, *READONLY])
        assert at.endswith("::prod-environment")
        assert "no deployment policy" in message and "branch_pattern='main'" in message

    def test_a_second_branch_is_refused(self) -> None:
        resources = [
            PROD_ENVIRONMENT,
            deployment_policy("main"),
            deployment_policy("release/*"),
            *READONLY,
        ]
        ((_, message),) = check_stack(self.policy, resources)
        assert "'main', 'release/*'" in message

    def test_another_single_branch_or_a_tag_is_refused(self) -> None:
        assert check_stack(self.policy, [PROD_ENVIRONMENT, deployment_policy("develop"), *READONLY])
        tag = (
            T.GITHUB_DEPLOYMENT_POLICY,
            "tag",
            {"repository": "rentagpu", "environment": "prod", "tagPattern": "v*"},
        )
        resources = [PROD_ENVIRONMENT, deployment_policy("main"), tag, *READONLY]
        assert check_stack(self.policy, resources)

    def test_a_prod_stack_without_the_environment_is_refused(self) -> None:
        ((at, message),) = check_stack(self.policy, [deployment_policy("main"), *READONLY])
        assert at is None and "declares no GitHub environment 'prod'" in message

    def test_a_prod_stack_without_prod_readonly_is_refused(self) -> None:
        # prod's drift role trusts environment:prod-readonly; undeclared, any branch could make it.
        resources = [PROD_ENVIRONMENT, deployment_policy("main")]
        ((at, message),) = check_stack(self.policy, resources)
        assert at is None and "declares no GitHub environment 'prod-readonly'" in message

    @pytest.mark.parametrize("extra", [["develop"], ["main", "*"], []])
    def test_prod_readonly_open_to_another_branch_is_refused(self, extra) -> None:
        resources = [
            PROD_ENVIRONMENT,
            deployment_policy("main"),
            READONLY_ENVIRONMENT,
            *(deployment_policy(p, environment_name="prod-readonly") for p in extra),
        ]
        ((at, message),) = check_stack(self.policy, resources)
        assert at.endswith("::prod-readonly-environment")
        assert "GitHub environment 'prod-readonly' must deploy from main only" in message

    def test_a_dev_stack_needs_no_prod_readonly(self) -> None:
        dev = (T.GITHUB_ENVIRONMENT, "dev-environment", environment("dev"))
        dev_main = deployment_policy("main", environment_name="dev")
        assert check_stack(self.policy, [dev, dev_main], context("dev")) == []
