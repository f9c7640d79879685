"""Stage 1 as rendered: environment protection, token secrets, repository-wide settings."""

from __future__ import annotations

import json
import os

import pulumi
import pytest

from infra.stages.github import component as github_stage
from infra.stages.github import ruleset
from infra.tools.offline import RecordingMocks, render, stable_id
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
    env = renderings["prod"].one(ENVIRONMENT, "prod-environment")
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
    assert sorted((p.inputs["environment"], p.inputs["branchPattern"]) for p in policies) == [
        ("prod", "main"),
        ("prod-readonly", "main"),
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
    secrets = {
        s.inputs["secretName"]: s
        for s in renderings[stack].of_type(ENV_SECRET)
        if s.inputs["environment"] == stack
    }
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


def test_prod_read_credentials_live_in_a_main_only_environment(renderings) -> None:
    """They can decrypt prod's config, which holds prod's Modal deploy token: no branch, and so no
    pull request, may read them."""
    prod = renderings["prod"]
    env = prod.one(ENVIRONMENT, "prod-readonly-environment")
    assert env.inputs["environment"] == "prod-readonly"
    assert env.inputs["canAdminsBypass"] is False
    assert env.inputs["deploymentBranchPolicy"] == {
        "protectedBranches": False,
        "customBranchPolicies": True,
    }
    assert env.inputs.get("reviewers") in (None, [])  # the daily drift check must run unattended
    policies = [
        p.inputs["branchPattern"]
        for p in prod.of_type(BRANCH_POLICY)
        if p.inputs["environment"] == "prod-readonly"
    ]
    assert policies == ["main"]
    secrets = {
        s.inputs["secretName"]: s
        for s in prod.of_type(ENV_SECRET)
        if s.inputs["environment"] == "prod-readonly"
    }
    assert set(secrets) == {"MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET"}
    assert (
        secrets["MODAL_READ_TOKEN_ID"].raw_inputs["value"] == PLANTED["rentagpu:modalReadTokenId"]
    )
    assert all(s.secret_paths == ("value",) for s in secrets.values())
    # no secret of prod's is readable at repository level; its variables name no credential
    assert prod.of_type(REPO_SECRET) == []
    assert sorted(v.inputs["variableName"] for v in prod.of_type(REPO_VARIABLE)) == [
        "MODAL_APP_NAME",
        "RENTAGPU_PROD_AWS_REGION",
        "RENTAGPU_PROD_PREVIEW_ROLE_ARN",
    ]
    assert not [r for r in renderings["dev"].resources if "readonly" in r.name]


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

    from infra.tools.plan import PROJECT_DIR

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
    env_vars = {
        (v.inputs["environment"], v.inputs["variableName"]): v.inputs["value"]
        for v in rendering.of_type(ENV_VARIABLE)
    }
    repo_vars = {
        v.inputs["variableName"]: v.inputs["value"] for v in rendering.of_type(REPO_VARIABLE)
    }
    assert env_vars[(stack, "AWS_DEPLOY_ROLE_ARN")] == rendering.outputs["deploy_role_arn"]
    assert env_vars[(stack, "AWS_REGION")] == "eu-west-1"
    upper = stack.upper()
    # Pull-request previews run without an environment: repository variables, named per stack.
    assert repo_vars[f"RENTAGPU_{upper}_PREVIEW_ROLE_ARN"] == rendering.outputs["preview_role_arn"]
    assert repo_vars[f"RENTAGPU_{upper}_AWS_REGION"] == "eu-west-1"
    if stack == "prod":
        assert (
            env_vars[("prod-readonly", "AWS_DRIFT_ROLE_ARN")] == rendering.outputs["drift_role_arn"]
        )
        assert env_vars[("prod-readonly", "AWS_REGION")] == "eu-west-1"
        assert f"RENTAGPU_{upper}_DRIFT_ROLE_ARN" not in repo_vars
    else:
        assert repo_vars[f"RENTAGPU_{upper}_DRIFT_ROLE_ARN"] == rendering.outputs["drift_role_arn"]


def test_main_requires_every_ci_check_and_they_exist_in_ci_yml(renderings) -> None:
    """What merges to main deploys dev at once, so CI must have passed; a required check whose
    name matches no job would block every merge, so the names are checked against ci.yml."""
    import yaml

    from infra.tools.plan import PROJECT_DIR

    rules = renderings["prod"].one(RULESET).inputs["rules"]
    required = [c["context"] for c in rules["requiredStatusChecks"]["requiredChecks"]]
    assert required == list(ruleset.REQUIRED_CHECKS)
    assert rules["requiredStatusChecks"]["strictRequiredStatusChecksPolicy"] is True

    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/ci.yml").read_text())
    job_names = set()
    for job in workflow["jobs"].values():
        name = job.get("name", "")
        matrix = job.get("strategy", {}).get("matrix", {})
        if "${{ matrix.stack }}" in name:
            job_names |= {name.replace("${{ matrix.stack }}", stack) for stack in matrix["stack"]}
        else:
            job_names.add(name)
    assert set(required) <= job_names, set(required) - job_names


def test_every_github_lookup_goes_through_the_stacks_provider() -> None:
    """With only GITHUB_TOKEN set, pulumi-github's default provider would take the owner from the
    token's user (terraform-provider-github provider.go); every lookup is bound to the explicit
    provider whose owner is rentagpu:githubOwner."""
    mocks = RecordingMocks()
    render(stack_config("prod"), mocks)
    github_calls = [
        (token, args, provider) for token, args, provider in mocks.calls if "github:" in token
    ]
    assert {provider for _, _, provider in github_calls} == {("pulumi:providers:github", "github")}
    reviewers = sorted(
        (token.split(":")[-1], args.get("username") or args.get("slug"))
        for token, args, _ in github_calls
        if token.endswith(("getUser", "getTeam"))
    )
    assert reviewers == [("getTeam", "ml-platform"), ("getUser", "alice"), ("getUser", "bob")]
    # A team lookup without summary_only lists every member and repository of the team.
    teams = [args for token, args, _ in github_calls if token.endswith("getTeam")]
    assert all(args.get("summaryOnly") is True for args in teams)


def test_the_github_token_never_reaches_the_stacks_state(monkeypatch) -> None:
    """pulumi-github's generated Provider copies GITHUB_TOKEN into its `token` input
    (pulumi_github/provider.py, `token = _utilities.get_env('GITHUB_TOKEN')`), and provider inputs
    are stored in state, which every read token of the stack decrypts. The program declares its
    provider without it, and leaves the variable as it found it for the plugin."""
    planted = "planted-github-admin-token-of-the-state-test"
    monkeypatch.setenv("GITHUB_TOKEN", planted)
    for stack in ("dev", "prod"):
        mocks = RecordingMocks()
        rendering = render(stack_config(stack), mocks)
        providers = [r for r in rendering.resources if r.type == "pulumi:providers:github"]
        assert [p.inputs.get("owner") for p in providers] == ["acme-ml"]
        assert "token" not in providers[0].inputs
        everything = json.dumps(
            [(r.type, r.name, r.inputs) for r in rendering.resources], default=str
        ) + json.dumps(mocks.calls, default=str)
        assert planted not in everything
    assert os.environ["GITHUB_TOKEN"] == planted
