"""Where GitHub keeps each credential CI reads, under the names the workflows read, and the
`gh secret set` line that writes one there.

Every name comes from `infra.core.names`, the names' one home; `tests/tools/runbook/test_coverage.py`
checks that what the runbook prints equals what `.github/workflows/*.yml` read, place for place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.core import names
from infra.tools.access.workflows import job_uses
from infra.tools.runbook.driver import PROJECT_DIR

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"

# The Pulumi backend tokens a person sets, by what they may do with one stack: `write` updates it
# (deploys, in its deployment environment); `read` reads it from its main-only read-only
# environment (drift checks, prod's preview on main); `preview` reads it from a repository secret
# (pull-request previews; dev's drift check too, since dev has no read-only environment).
PULUMI_SCOPES = ("write", "read", "preview")


@dataclass(frozen=True)
class SecretPlace:
    """One GitHub Actions secret: in an environment, or the repository's (`location` None)."""

    location: str | None
    name: str

    def describe(self) -> str:
        if self.location is None:
            return f"repository secret {self.name}"
        return f"environment secret {self.name} of environment '{self.location}'"

    def gh_set(self, repo: str) -> str:
        """The command that writes it; the value comes on stdin or at gh's prompt, never argv."""
        env = f" --env {self.location}" if self.location else ""
        return f"gh secret set {self.name}{env} --repo {repo}"

    def gh_delete(self, repo: str) -> str:
        env = f" --env {self.location}" if self.location else ""
        return f"gh secret delete {self.name}{env} --repo {repo}"

    def list_path(self, repo: str) -> str:
        """GitHub's REST path of the secrets listed with it (names and dates, never values:
        docs.github.com/en/rest/actions/secrets, list repository / environment secrets)."""
        if self.location is None:
            return f"/repos/{repo}/actions/secrets"
        return f"/repos/{repo}/environments/{self.location}/secrets"


def describe(places: Sequence[SecretPlace]) -> str:
    """'environment secrets A and B of environment 'E'' for a pair in one place."""
    if len({p.location for p in places}) != 1:
        return "; ".join(p.describe() for p in places)
    joined = " and ".join(p.name for p in places)
    where = places[0].location
    plural = "s" if len(places) > 1 else ""
    if where is None:
        return f"repository secret{plural} {joined}"
    return f"environment secret{plural} {joined} of environment '{where}'"


def ci_token_places(environment: str, purpose: str) -> tuple[SecretPlace, ...]:
    """Where GitHub keeps CI's Modal token of `purpose` (deploy or read): its id and secret."""
    location, secret_names = names.ci_token_location(environment, purpose)
    return tuple(SecretPlace(location, name) for name in secret_names)


def deploy_token_places(environment: str) -> str:
    return describe(ci_token_places(environment, "deploy"))


def pulumi_token_place(environment: str, scope: str) -> SecretPlace | None:
    """Where the stack's Pulumi token of `scope` lives; None when the stack has no such place
    (dev has no read-only environment: its read token is the `preview` one)."""
    if scope == "write":
        return SecretPlace(environment, names.PULUMI_TOKEN_SECRET)
    if scope == "read":
        readonly = names.readonly_environment(environment)
        return None if readonly is None else SecretPlace(readonly, names.PULUMI_TOKEN_SECRET)
    if scope == "preview":
        return SecretPlace(None, names.pulumi_read_token_secret(environment))
    raise ValueError(f"unknown Pulumi token scope {scope!r}; known: {', '.join(PULUMI_SCOPES)}")


def pulumi_scopes(environment: str) -> list[str]:
    """The scopes the stack has a Pulumi token for."""
    return [s for s in PULUMI_SCOPES if pulumi_token_place(environment, s) is not None]


GITHUB_READ_TOKEN_PLACE = SecretPlace(None, names.GITHUB_READ_TOKEN_SECRET)


def readers(place: SecretPlace, workflows: Path = WORKFLOWS) -> list[str]:
    """The workflow jobs that receive the secret at this place (`workflow.yml / job`): a job in
    the environment, for an environment's secret; any job naming it, for a repository secret."""
    return sorted(
        job.label
        for job in job_uses(workflows)
        if place.name in job.secrets
        and (place.location is None or place.location in job.environments)
    )
