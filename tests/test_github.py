"""Stage 1 as rendered: environment protection, token secrets, repository-wide settings."""

from __future__ import annotations

import pulumi
import pytest

from infra import github as github_stage
from infra.render import RecordingMocks, render, stable_id
from tests.stacks import PLANTED, stack_config

ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
BRANCH_POLICY = (
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
)
ENV_SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
REPO_SECRET = "github:index/actionsSecret:ActionsSecret"
REPO_VARIABLE = "github:index/actionsVariable:ActionsVariable"
ENV_VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
RULESET = "github:index/repositoryRuleset:RepositoryRuleset"


def test_prod_environment_requires_reviewers_and_blocks_self_review_and_admin_bypass(
    renderings,
) -> None:
    env = renderings["prod"].one(ENVIRONMENT)
    assert env.inputs["environment"] == "prod"
    assert env.inputs["repository"] == "rentagpu"
    # logins and team slugs resolved to the numeric ids GitHub's API needs (ints, not strings)
    assert env.inputs["reviewers"] == [
        {
            "users": [int(stable_id("user", "alice")), int(stable_id("user", "bob"))],
            "teams": [int(stable_id("team", "ml-platform"))],
        }
    ]
    assert env.inputs["preventSelfReview"] is True
    assert env.inputs["canAdminsBypass"] is False
    assert env.inputs["deploymentBranchPolicy"] == {
        "protectedBranches": False,
        "customBranchPolicies": True,
    }


def test_prod_deploys_from_main_only(renderings) -> None:
    policies = renderings["prod"].of_type(BRANCH_POLICY)
    assert [(p.inputs["environment"], p.inputs["branchPattern"]) for p in policies] == [
        ("prod", "main")
    ]
    assert "tagPattern" not in policies[0].inputs


def test_dev_environment_is_unreviewed_but_still_main_only_and_unbypassable(renderings) -> None:
    """Documented dev behaviour: merges to main deploy at once, with no reviewer; other branches
    can deploy dev only if listed in deploymentBranches; admins never bypass."""
    env = renderings["dev"].one(ENVIRONMENT)
    assert env.inputs["environment"] == "dev"
    assert "reviewers" not in env.inputs or env.inputs["reviewers"] in (None, [])
    assert env.inputs["preventSelfReview"] is False
    assert env.inputs["canAdminsBypass"] is False
    assert env.inputs["deploymentBranchPolicy"]["customBranchPolicies"] is True
    patterns = [p.inputs["branchPattern"] for p in renderings["dev"].of_type(BRANCH_POLICY)]
    assert patterns == ["main"]


def test_dev_can_admit_extra_branches() -> None:
    rendering = render(stack_config("dev", deploymentBranches=["main", "feature/*"]))
    patterns = sorted(p.inputs["branchPattern"] for p in rendering.of_type(BRANCH_POLICY))
    assert patterns == ["feature/*", "main"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_modal_tokens_are_environment_secrets_marked_secret(renderings, stack) -> None:
    secrets = {s.inputs["secretName"]: s for s in renderings[stack].of_type(ENV_SECRET)}
    assert set(secrets) == {"MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"}
    for name, key in (
        ("MODAL_TOKEN_ID", "rentagpu:modalTokenId"),
        ("MODAL_TOKEN_SECRET", "rentagpu:modalTokenSecret"),
    ):
        secret = secrets[name]
        assert secret.inputs["environment"] == stack
        assert secret.secret_paths == ("value",)
        assert secret.inputs["value"] == "[secret]"
        assert secret.raw_inputs["value"] == PLANTED[key]
        # deprecated fields that bypass the secret handling are not used
        assert "plaintextValue" not in secret.inputs and "encryptedValue" not in secret.inputs


def test_read_only_tokens_are_per_stack_repository_secrets(renderings) -> None:
    names = sorted(s.inputs["secretName"] for s in renderings["dev"].of_type(REPO_SECRET))
    assert names == ["RENTAGPU_DEV_MODAL_READ_TOKEN_ID", "RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET"]
    assert all(s.secret_paths == ("value",) for s in renderings["dev"].of_type(REPO_SECRET))
    without = render(stack_config("dev", modalReadTokenId=None, modalReadTokenSecret=None))
    assert without.of_type(REPO_SECRET) == []


def test_every_actions_secret_is_deleted_before_it_is_replaced(monkeypatch) -> None:
    """Create-then-delete of a secret with the same id ends with no secret (pulumi-github #223)."""
    seen: list[pulumi.ResourceOptions] = []
    for attribute in ("ActionsEnvironmentSecret", "ActionsSecret"):
        original = getattr(github_stage.github, attribute)

        def recording(*args, _original=original, **kwargs):
            seen.append(kwargs["opts"])
            return _original(*args, **kwargs)

        monkeypatch.setattr(github_stage.github, attribute, recording)
    render(stack_config("prod"))
    assert len(seen) == 4
    assert all(opts.delete_before_replace is True for opts in seen)


def test_repository_wide_settings_belong_to_the_owner_stack_only(renderings) -> None:
    prod, dev = renderings["prod"], renderings["dev"]
    app_var = [
        v for v in prod.of_type(REPO_VARIABLE) if v.inputs["variableName"] == "MODAL_APP_NAME"
    ]
    assert [v.inputs["value"] for v in app_var] == ["rentagpu-executor"]
    assert not [
        v for v in dev.of_type(REPO_VARIABLE) if v.inputs["variableName"] == "MODAL_APP_NAME"
    ]
    assert dev.of_type(RULESET) == []

    ruleset = prod.one(RULESET)
    assert ruleset.inputs["target"] == "branch"
    assert ruleset.inputs["enforcement"] == "active"
    assert ruleset.inputs["conditions"]["refName"]["includes"] == ["refs/heads/main"]
    rules = ruleset.inputs["rules"]
    assert rules["deletion"] is True and rules["nonFastForward"] is True
    assert rules["pullRequest"]["requiredApprovingReviewCount"] == 1
    assert ruleset.inputs.get("bypassActors") in (None, [])


def test_exactly_one_committed_stack_owns_repository_settings() -> None:
    import yaml

    from infra.plan import PROJECT_DIR

    owners = [
        stack
        for stack in ("dev", "prod")
        if (yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]).get(
            "rentagpu:ownsRepositorySettings"
        )
        is True
    ]
    assert owners == ["prod"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_ci_role_arns_are_published_where_the_workflows_read_them(renderings, stack) -> None:
    rendering = renderings[stack]
    env_vars = {v.inputs["variableName"]: v.inputs for v in rendering.of_type(ENV_VARIABLE)}
    assert env_vars["AWS_DEPLOY_ROLE_ARN"]["value"] == rendering.outputs["deploy_role_arn"]
    assert env_vars["AWS_DEPLOY_ROLE_ARN"]["environment"] == stack
    assert env_vars["AWS_REGION"]["value"] == "eu-west-1"
    repo_vars = {
        v.inputs["variableName"]: v.inputs["value"] for v in rendering.of_type(REPO_VARIABLE)
    }
    upper = stack.upper()
    assert repo_vars[f"RENTAGPU_{upper}_PREVIEW_ROLE_ARN"] == rendering.outputs["preview_role_arn"]
    assert repo_vars[f"RENTAGPU_{upper}_DRIFT_ROLE_ARN"] == rendering.outputs["drift_role_arn"]
    assert repo_vars[f"RENTAGPU_{upper}_AWS_REGION"] == "eu-west-1"


def test_reviewer_lookups_go_through_the_provider() -> None:
    mocks = RecordingMocks()
    render(stack_config("prod"), mocks)
    lookups = sorted(
        (token, args.get("username") or args.get("slug"))
        for token, args in mocks.calls
        if token.startswith("github:")
    )
    assert lookups == [
        ("github:index/getTeam:getTeam", "ml-platform"),
        ("github:index/getUser:getUser", "alice"),
        ("github:index/getUser:getUser", "bob"),
    ]
