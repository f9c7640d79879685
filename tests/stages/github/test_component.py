"""Stage 1 as rendered: environment protection, token secrets, repository-wide settings."""

from __future__ import annotations

import json
import os

import pytest

from infra.core import resource_types as types
from infra.stages.github import ruleset
from infra.tools.offline import RecordingMocks, render, stable_id
from tests.stacks import stack_config

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


def test_prod_read_credentials_live_in_a_main_only_environment(renderings) -> None:
    """Drift checks and audits of prod run there, from main only and unattended; what they hold
    reaches nothing of prod that writes (tests/tools/access)."""
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
        s.inputs["secretName"]
        for s in prod.of_type(ENV_SECRET)
        if s.inputs["environment"] == "prod-readonly"
    }
    assert secrets == {"MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET"}
    # no secret of prod's is readable at repository level; its variables name no credential
    assert prod.of_type(REPO_SECRET) == []
    assert sorted(v.inputs["variableName"] for v in prod.of_type(REPO_VARIABLE)) == [
        "MODAL_APP_NAME",
        "RENTAGPU_PROD_AWS_REGION",
        "RENTAGPU_PROD_PREVIEW_ROLE_ARN",
    ]
    assert not [r for r in renderings["dev"].resources if "readonly" in r.name]


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
    assert rules["pullRequest"]["requireCodeOwnerReview"] is True
    assert ruleset.inputs.get("bypassActors") in (None, [])


def test_workflows_can_never_approve_a_pull_request(renderings) -> None:
    """With approval allowed, PR code holding `pull-requests: write` (the preview's comment) could
    approve its own pull request. Both fields are set: the provider sends both on every write and
    an unset default is sent as "" (terraform-provider-github
    resource_github_workflow_repository_permissions.go)."""
    permissions = renderings["prod"].one(types.GITHUB_WORKFLOW_PERMISSIONS)
    assert permissions.inputs == {
        "repository": "rentagpu",
        "canApprovePullRequestReviews": False,
        "defaultWorkflowPermissions": "read",
    }
    assert renderings["dev"].of_type(types.GITHUB_WORKFLOW_PERMISSIONS) == []


def test_codeowners_cover_the_program_the_app_the_workflows_and_the_stacks() -> None:
    """The ruleset requires a code owner's review; that means something only for paths CODEOWNERS
    names. GitHub uses the last matching line (docs.github.com, "About code owners")."""
    from fnmatch import fnmatch

    from infra.tools.plan import PROJECT_DIR

    lines = [
        line.split()
        for line in (PROJECT_DIR / ".github/CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def owners(path: str) -> list[str]:
        found: list[str] = []
        for pattern, *who in lines:
            anchored = pattern.lstrip("/")
            if anchored.endswith("/"):
                matches = path.startswith(anchored)
            else:
                matches = fnmatch(path, anchored) or fnmatch(path.rsplit("/", 1)[-1], anchored)
            if matches:
                found = who
        return found

    for path in (
        "infra/stages/aws/iam.py",
        "modal_app/app.py",
        ".github/workflows/deploy.yml",
        ".github/CODEOWNERS",
        "Pulumi.yaml",
        "Pulumi.prod.yaml",
        "requirements.txt",
    ):
        assert owners(path), f"{path} has no code owner"


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
