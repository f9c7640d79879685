"""Every name and identifier the stacks create or match on, built by pure functions.

Names carry the environment so dev and prod can never share a role, secret or environment, and
IAM objects live under a per-environment path so a policy can scope to one stack by ARN.
"""

from __future__ import annotations

import re

from modal_app import contract

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"
MODAL_OIDC_HOST = "oidc.modal.com"
MODAL_OIDC_AUDIENCE = "oidc.modal.com"
# The repository variable the workflows read the app's name from (the app reads the same name).
APP_NAME_VARIABLE = contract.APP_NAME_VARIABLE
# GitHub secrets holding a stack's Modal deploy token, in its deployment environment.
GITHUB_TOKEN_SECRETS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")
# GitHub secrets holding a stack's read-only Modal token: in its -readonly environment (prod),
# or as per-stack repository secrets (dev), see `read_token_secrets`.
GITHUB_READ_TOKEN_SECRETS = ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET")
# CI's Modal tokens, one per purpose, and the one role each holds in its stack's environment.
CI_TOKEN_ROLES = {"deploy": "contributor", "read": "viewer"}
# Secrets a person sets in GitHub (the program never sees them). A Pulumi backend token: in a
# stack's deployment environment it writes that stack; in its read-only environment it reads it.
PULUMI_TOKEN_SECRET = "PULUMI_ACCESS_TOKEN"
# The read-only GitHub token every job that runs the program uses for its lookups (repository).
GITHUB_READ_TOKEN_SECRET = "RENTAGPU_GITHUB_READ_TOKEN"
# The admin's GitHub token, for `pulumi up` of the governance plane from the admin's own shell. No
# workflow may hold it (README: "Two planes of authority"); named so a copy in one is recognised.
GITHUB_ADMIN_TOKEN_SECRET = "PULUMI_GITHUB_TOKEN"
# Defined by the app, which reads it in its containers; the program writes it.
RUNTIME_SECRET_NAME = contract.SECRET_NAME


def prefix(environment: str) -> str:
    return f"rentagpu-{environment}"


def readonly_environment(environment: str) -> str | None:
    """The GitHub environment holding a stack's read-only CI credentials: prod's only.

    Its deployment branch policy admits main only, so no branch or pull request can read them:
    they can decrypt the stack's config, which holds the stack's Modal deploy token. dev keeps its
    read credentials in repository secrets, so pull requests can preview it.
    """
    return f"{environment}-readonly" if environment == "prod" else None


def repository_name(environment: str, suffix: str) -> str:
    """Name of a per-stack repository variable or secret, e.g. RENTAGPU_DEV_DRIFT_ROLE_ARN."""
    return f"RENTAGPU_{environment.upper()}_{suffix}"


def read_token_secrets(environment: str) -> tuple[str, str]:
    """Where GitHub keeps a stack's read-only Modal token: secret names in its -readonly
    environment, or per-stack repository secrets when it has none."""
    if readonly_environment(environment) is not None:
        return GITHUB_READ_TOKEN_SECRETS
    first, second = GITHUB_READ_TOKEN_SECRETS
    return repository_name(environment, first), repository_name(environment, second)


def ci_service_user(environment: str, purpose: str, serial: int) -> str:
    """The Modal service user the program mints for one CI purpose; a new serial is a new user."""
    return f"{prefix(environment)}-ci-{purpose}-{serial}"


def ci_token_location(environment: str, purpose: str) -> tuple[str | None, tuple[str, str]]:
    """Where GitHub keeps CI's Modal token of `purpose`: (environment, or None for the
    repository; the id and secret names). The deploy token lives in the stack's deployment
    environment; the read token where `read_token_secrets` says."""
    if purpose == "deploy":
        return environment, GITHUB_TOKEN_SECRETS
    return readonly_environment(environment), read_token_secrets(environment)


def pulumi_read_token_secret(environment: str) -> str:
    """The repository secret holding a Pulumi token that can only read the stack, for previews
    of pull requests (which run without an environment)."""
    return repository_name(environment, "PULUMI_READ_TOKEN")


def iam_path(environment: str) -> str:
    return f"/rentagpu/{environment}/"


def role_name(environment: str, purpose: str) -> str:
    """An IAM role of the stack: purpose is deploy, preview, drift or runtime."""
    return f"{prefix(environment)}-{purpose}"


def runtime_user_name(environment: str) -> str:
    return f"{prefix(environment)}-runtime"


def runtime_boundary_name(environment: str) -> str:
    return f"{prefix(environment)}-runtime-boundary"


def iam_arn(account_id: str, environment: str, kind: str, name: str) -> str:
    """The ARN of a stack's IAM `kind` (role, user, policy), under the stack's path."""
    return f"arn:aws:iam::{account_id}:{kind}{iam_path(environment)}{name}"


def oidc_provider_arn(account_id: str, host: str) -> str:
    # AWS derives the ARN from the issuer host, so a stack that does not own the provider can
    # name it without listing every provider in the account.
    return f"arn:aws:iam::{account_id}:oidc-provider/{host}"


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


# The claims of GitHub's OIDC `sub` this project has the repository issue (the owner stack declares
# the template, `ActionsRepositoryOidcSubjectClaimCustomizationTemplate`). Numeric ids, not names:
# GitHub's default `sub` names the repository (`repo:OWNER/REPO:...`), and repositories created or
# renamed since July 15, 2026 carry their ids inside that segment (`repo:OWNER@ID/REPO@ID:...`), so
# the default format depends on the repository's history. With this template the `sub` is the same
# for every repository, survives renames, and has no `repo` segment to change ("context" is what
# follows the repository in the default format: `environment:NAME`, `pull_request` or `ref:...`).
# docs.github.com, Security hardening with OpenID Connect / OIDC reference: "Customizing the
# subject claims", "Immutable subject claims".
GITHUB_SUBJECT_CLAIMS = ("repository_owner_id", "repository_id", "context")


def github_subject(owner_id: int | str, repository_id: int | str, context: str) -> str:
    """The `sub` GitHub issues under GITHUB_SUBJECT_CLAIMS: each claim as `key:value`, in order."""
    return f"repository_owner_id:{owner_id}:repository_id:{repository_id}:{context}"


def environment_context(environment: str) -> str:
    """A job that names `environment:` (deploys, and prod's read-only jobs)."""
    return f"environment:{environment}"


# A job run for a pull request without an environment (same-repository PRs; forks get no token).
PULL_REQUEST_CONTEXT = "pull_request"
# A job on main without an environment: dev's scheduled drift check.
MAIN_BRANCH_CONTEXT = "ref:refs/heads/main"


def ci_role_contexts(environment: str) -> dict[str, str]:
    """Which jobs each CI role of a stack trusts, as the `context` of their OIDC subject.

    deploy: jobs in the stack's own GitHub environment (protected, reviewed for prod). preview:
    pull-request jobs; the role can only look up the OIDC providers, so any branch may hold it.
    drift: jobs in the stack's read-only environment (main only) when it has one, else jobs on main.
    """
    readonly = readonly_environment(environment)
    return {
        "deploy": environment_context(environment),
        "preview": PULL_REQUEST_CONTEXT,
        "drift": MAIN_BRANCH_CONTEXT if readonly is None else environment_context(readonly),
    }


def modal_subject_pattern(workspace_id: str, environment: str, app: str, function: str) -> str:
    """Modal's identity-token `sub`, pinned to one function; only the container id may vary."""
    return (
        f"modal:workspace_id:{workspace_id}:environment_name:{environment}"
        f":app_name:{app}:function_name:{function}:container_id:*"
    )


# Logical names: how resources are called in the stack's state.
# The runbook finds resources in exported state by these, so they are built here, not by hand.


def slug(text: str) -> str:
    """A logical-name-safe form of a branch pattern or key ('release/*' -> 'release-star')."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("*", "star")).strip("-")


def github_secret_resource(scope: str, secret_name: str) -> str:
    """The logical name of a GitHub Actions secret resource. `scope` is the secret's environment,
    or the stack's own for a repository-wide one (`prod-modal-token-id`,
    `dev-rentagpu-dev-modal-read-token-id`)."""
    return f"{scope}-{slug(secret_name)}"


RUNTIME_ACCESS_KEY_RESOURCE_PREFIX = "runtime-key-"


def runtime_access_key_resource(environment: str, serial: int | str) -> str:
    """The runtime user's access key; a new serial is a new key (see `rotate aws-key`)."""
    return f"{environment}-{RUNTIME_ACCESS_KEY_RESOURCE_PREFIX}{serial}"


def ci_token_resource(environment: str, purpose: str, serial: int) -> str:
    """CI's Modal token of `purpose`; a new serial is a new logical resource (rotation)."""
    return f"{environment}-ci-{purpose}-token-{serial}"


def runtime_role_policy_resource(environment: str) -> str:
    """The runtime role's inline policy (OIDC mode), which CI's deploys apply."""
    return f"{environment}-runtime-role-s3"


def runtime_user_policy_resource(environment: str) -> str:
    """The runtime user's inline policy (access-key mode), which CI's deploys apply."""
    return f"{environment}-runtime-user-s3"


def modal_environment_resource(environment: str) -> str:
    return f"{environment}-modal-environment"


def modal_runtime_secret_resource(environment: str) -> str:
    return f"{environment}-modal-runtime-secret"


def modal_budget_resource(environment: str) -> str:
    """The spend cap of the stack's Modal environment (`rentagpu:monthlyBudgetDollars`)."""
    return f"{environment}-modal-budget"


def app_deployment_resource(environment: str) -> str:
    return f"{environment}-app-deployment"
