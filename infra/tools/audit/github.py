"""The audit's GitHub part: deployments to the stack's environment and who approved them, and the
age of the secrets CI reads.

Endpoints (GitHub REST, API version 2022-11-28), all GET:
- deployments: `/repos/{owner}/{repo}/deployments?environment=ENV`
  (https://docs.github.com/en/rest/deployments/deployments#list-deployments), newest first;
- their statuses: `/repos/{owner}/{repo}/deployments/{id}/statuses`
  (https://docs.github.com/en/rest/deployments/statuses#list-deployment-statuses). A status
  written by Actions carries the run's URL in `log_url`/`target_url`; GitHub keeps statuses 90 days;
- the run's review history: `/repos/{owner}/{repo}/actions/runs/{run_id}/approvals`
  (https://docs.github.com/en/rest/actions/workflow-runs#get-the-review-history-for-a-workflow-run):
  `state` approved/rejected, `user.login`, `environments[].name`;
- secrets' metadata (never values): `/repos/{owner}/{repo}/environments/{env}/secrets`
  (https://docs.github.com/en/rest/actions/secrets#list-environment-secrets) and, for dev's
  read-only credentials, `/repos/{owner}/{repo}/actions/secrets`; `updated_at` is the last write.
"""

from __future__ import annotations

import datetime
import fnmatch
from collections.abc import Mapping
from typing import Any

from infra.core import names
from infra.core.errors import AuditError
from infra.tools.audit.findings import (
    Activity,
    AuditScope,
    Finding,
    NotChecked,
    Severity,
    SourceResult,
    ago,
    day,
)
from infra.tools.audit.github_api import TOKEN_VARIABLE, GitHubApi, run_id_of

SYSTEM = "github"


def github_source(scope: AuditScope, environ: Mapping[str, str]) -> SourceResult:
    api = GitHubApi.from_env(environ)
    result = SourceResult()
    if not api.has_token:
        result.not_checked.append(
            NotChecked(SYSTEM, "deployments and secrets", f"{TOKEN_VARIABLE} is not set")
        )
        return result
    repo = f"/repos/{scope.config.github.owner}/{scope.config.github.repository}"
    try:
        result.extend(_deployments(api, repo, scope))
    except AuditError as error:
        result.not_checked.append(NotChecked(SYSTEM, "deployments", str(error)))
    for where, path, prefix in _secret_places(repo, scope.environment):
        try:
            result.extend(_secrets(api, path, where, prefix, scope))
        except AuditError as error:
            result.not_checked.append(NotChecked(SYSTEM, f"secrets of {where}", str(error)))
    return result


def _when(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text) if text else None


def _deployments(api: GitHubApi, repo: str, scope: AuditScope) -> SourceResult:
    result = SourceResult()
    env = scope.environment
    listed = api.paged(f"{repo}/deployments", {"environment": env})
    recent = [d for d in listed if (_when(d.get("created_at")) or scope.now) >= scope.window_start]
    for deployment in recent:
        result.extend(_deployment(api, repo, scope, deployment))
    if not recent:
        result.activity.append(
            Activity(SYSTEM, f"no deployment to `{env}` in the last {scope.since_days} days")
        )
    return result


def _deployment(
    api: GitHubApi, repo: str, scope: AuditScope, deployment: Mapping[str, Any]
) -> SourceResult:
    result = SourceResult()
    env = scope.environment
    number = deployment.get("id")
    ref = str(deployment.get("ref") or "")
    branch = ref.removeprefix("refs/heads/")
    creator = (deployment.get("creator") or {}).get("login", "?")
    sha = str(deployment.get("sha") or "")[:7]
    statuses = api.paged(f"{repo}/deployments/{number}/statuses")
    state = statuses[0].get("state", "?") if statuses else "no status"
    run_id = next(
        (r for s in statuses if (r := run_id_of(s.get("log_url") or s.get("target_url")))), None
    )
    approvers: list[str] = []
    if run_id is not None:
        reviews = api.get(f"{repo}/actions/runs/{run_id}/approvals") or []
        approvers = sorted(
            {
                (r.get("user") or {}).get("login", "?")
                for r in reviews
                if r.get("state") == "approved"
                and env in {e.get("name") for e in r.get("environments") or []}
            }
        )
    created = _when(deployment.get("created_at"))
    when = day(created) if created else "?"
    subject = f"deployment {number} to `{env}` ({when}, `{ref}` at {sha})"
    investigate = (
        f"gh run view {run_id} --log" if run_id else f"gh api {repo}/deployments/{number}/statuses"
    )
    allowed = scope.config.github.deployment_branches
    if not any(fnmatch.fnmatchcase(branch, pattern) for pattern in allowed):
        result.findings.append(
            Finding(
                SYSTEM,
                "github-deploy-not-main",
                Severity.HIGH if scope.config.is_prod else Severity.MEDIUM,
                subject,
                f"ref `{ref}` is not admitted by the environment's branch policy "
                f"({', '.join(allowed)}); started by {creator}, state {state}",
                investigate,
            )
        )
    if scope.config.is_prod and not approvers:
        why = "its run has no approval" if run_id else "no workflow run is recorded for it"
        result.findings.append(
            Finding(
                SYSTEM,
                "github-deploy-unapproved",
                Severity.HIGH,
                subject,
                f"{why} for `{env}`; started by {creator}, state {state}",
                investigate,
            )
        )
    approved = f"approved by {', '.join(approvers)}" if approvers else "no approval on record"
    result.activity.append(
        Activity(SYSTEM, f"{subject}: {state}, started by {creator}, {approved}")
    )
    return result


def _secret_places(repo: str, env: str) -> list[tuple[str, str, str | None]]:
    """(label, path, repository-secret name prefix) of every secret list the stack's CI reads."""
    places = [(f"environment `{env}`", f"{repo}/environments/{env}/secrets", None)]
    readonly = names.readonly_environment(env)
    if readonly is not None:
        places.append(
            (f"environment `{readonly}`", f"{repo}/environments/{readonly}/secrets", None)
        )
    else:
        prefix = names.repository_name(env, "")
        places.append(("the repository", f"{repo}/actions/secrets", prefix))
    return places


def _rotation_command(scope: AuditScope, secret: str, where: str) -> str:
    """The runbook's command for a secret due for rotation (`python -m infra rotate KIND`)."""
    stack, env = scope.stack, scope.environment
    location = where.split("`")[1] if where.startswith("environment") else None
    if secret in names.GITHUB_TOKEN_SECRETS and scope.config.modal.token_id is not None:
        return f"python -m infra rotate modal-token --stack {stack} --create-service-user NAME"
    if secret in (*names.GITHUB_TOKEN_SECRETS, *names.read_token_secrets(env)):
        return f"python -m infra rotate ci-tokens --stack {stack}"
    if secret == names.PULUMI_TOKEN_SECRET and location in (env, names.readonly_environment(env)):
        scope_name = "write" if location == env else "read"
        return f"python -m infra rotate pulumi-token --stack {stack} --scope {scope_name}"
    if secret == names.pulumi_read_token_secret(env):
        return f"python -m infra rotate pulumi-token --stack {stack} --scope preview"
    if secret == names.GITHUB_READ_TOKEN_SECRET:
        return f"python -m infra rotate github-read-token --stack {stack}"
    env_flag = f" --env {location}" if location else ""
    return f"gh secret set {secret}{env_flag}  # a new value, on stdin"


def _secrets(
    api: GitHubApi, path: str, where: str, prefix: str | None, scope: AuditScope
) -> SourceResult:
    result = SourceResult()
    for secret in api.paged(path, key="secrets"):
        name = str(secret.get("name", "?"))
        if prefix is not None and not name.startswith(prefix):
            continue
        updated = _when(secret.get("updated_at") or secret.get("created_at"))
        if updated is None or scope.age_days(updated) <= scope.rotation_days:
            continue
        result.findings.append(
            Finding(
                SYSTEM,
                "github-secret-due",
                Severity.MEDIUM,
                f"secret `{name}` of {where}",
                f"last written {ago(scope.age_days(updated))} ({day(updated)}); the "
                f"rotation period is {scope.rotation_days} days (tokenRotationDays)",
                _rotation_command(scope, name, where),
            )
        )
    return result
