"""`rotate pulumi-token` and `rotate github-read-token`: tokens a person makes and sets in GitHub.

Neither can be created from here (Pulumi Cloud and GitHub make them, in their web pages), so the
command prints the steps: what the new token may do, the exact `gh secret set` for the place each
workflow reads it from, which jobs use it, and how to revoke the old one. `--check-since TIME`
then verifies what can be verified without the token: GitHub's metadata of that secret (names and
dates only, never a value) says it was written after TIME. Whether the value works, GitHub cannot
say: the next run of the jobs listed does. Revoking the old token is checked by
`incident --credential ... --verify`, which asks Pulumi Cloud or GitHub about the old token itself.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from infra.core.config import config_value
from infra.core.errors import RentagpuError, RotationError
from infra.tools.runbook.driver import StackDriver, names_config
from infra.tools.runbook.places import (
    GITHUB_READ_TOKEN_PLACE,
    SecretPlace,
    pulumi_scopes,
    pulumi_token_place,
    readers,
)
from infra.tools.runbook.steps import Steps

PULUMI_TOKENS_PAGE = "Pulumi Cloud (https://app.pulumi.com)"
GITHUB_TOKENS_PAGE = "https://github.com/settings/personal-access-tokens (Fine-grained tokens)"
# What the GitHub read token's lookups need: the program reads the repository's settings,
# environments, rulesets, variables and secrets' names; the audit reads deployments and runs.
GITHUB_READ_PERMISSIONS = (
    "Actions",
    "Administration",
    "Deployments",
    "Environments",
    "Metadata",
    "Secrets",
    "Variables",
)


@dataclass(frozen=True)
class PersonToken:
    """One token a person sets: what it is, where it goes, what the new one may do."""

    title: str
    credential: str  # the incident kind
    place: SecretPlace
    make: tuple[str, ...]  # how to create the new one
    revoke: tuple[str, ...]  # how to revoke the old one


def pulumi_token(stack: str, environment: str, scope: str, project: str) -> PersonToken:
    place = pulumi_token_place(environment, scope)
    if place is None:
        known = ", ".join(pulumi_scopes(environment))
        raise RotationError(
            f"stack '{stack}' has no Pulumi token of scope '{scope}' (it has no read-only "
            f"environment; its read token is the repository one): use --scope {known}"
        )
    access = "Write" if scope == "write" else "Read"
    return PersonToken(
        title=f"Pulumi token of stack {stack} ({scope})",
        credential="pulumi-token",
        place=place,
        make=(
            f"a team token of a Pulumi Cloud team that holds {access} on stack {project}/{stack} "
            "and nothing else (Settings > Teams > the team > Access tokens); never a personal "
            "token, which reaches every stack its owner can",
            "set the organization's default stack permission to None: a team token also gets "
            "that default (Pulumi docs: Access tokens, 'What team tokens can do')",
            f"{access} includes decrypting the stack's config and state (stack:decrypt)",
        ),
        revoke=(
            f"{PULUMI_TOKENS_PAGE}: the Access tokens page of the team (or organization, or "
            "person) that owns the old token > delete it",
        ),
    )


def github_read_token(repo: str) -> PersonToken:
    permissions = ", ".join(GITHUB_READ_PERMISSIONS)
    return PersonToken(
        title="GitHub read token",
        credential="github-read-token",
        place=GITHUB_READ_TOKEN_PLACE,
        make=(
            f"a fine-grained personal access token with access to {repo} only and these "
            f"repository permissions, each Read-only: {permissions}; nothing with write",
            "give it an expiry; an organization may require approval of the token",
        ),
        revoke=(
            f"{GITHUB_TOKENS_PAGE}: the old token > Delete (organization owners: Organization "
            "settings > Personal access tokens > Active tokens > Revoke)",
        ),
    )


def rotate_person_token(
    driver: StackDriver,
    scope: str | None,
    *,
    check_since: str | None,
    out: TextIO,
    environ: Mapping[str, str],
    now: datetime.datetime | None = None,
) -> int:
    """Print the steps (or, with `check_since`, check GitHub's record); the exit code."""
    notes: list[str] = []
    raw = names_config(driver, notes)
    stack = driver.stack
    environment = config_value(raw, "environment") or stack
    repo = f"{config_value(raw, 'githubOwner') or 'OWNER'}/{config_value(raw, 'githubRepository') or 'REPO'}"
    if scope is None:
        token = github_read_token(repo)
        command = f"github-read-token --stack {stack}"
    else:
        token = pulumi_token(stack, environment, scope, _project())
        command = f"pulumi-token --stack {stack} --scope {scope}"
    if check_since is not None:
        return _check(token, repo, check_since, out, environ)
    started = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    steps = Steps(out, 5)
    print(f"Rotate the {token.title}: {token.place.describe()} of {repo}", file=out)
    print(
        "It cannot be created from here: make it, then set it where the workflows read it.",
        file=out,
    )
    steps.step("Create the new token")
    for line in token.make:
        steps.say(f"- {line}")
    steps.step("Store it where the workflows read it (the value at gh's prompt or on stdin)")
    steps.say(token.place.gh_set(repo))
    used_by = readers(token.place)
    steps.say("read by: " + (", ".join(used_by) or "no workflow job (nothing uses it)"))
    steps.step("Check that GitHub holds a value written from now on")
    steps.say(
        f"python -m infra rotate {command} --check-since {started}   "
        "(GITHUB_TOKEN: a token that may read the repository's secrets' names)"
    )
    steps.step("Let a run of the jobs above succeed with it")
    steps.say("a failed run still has the old token to fall back on until the next step")
    steps.step("Revoke the old token")
    for line in token.revoke:
        steps.say(line)
    steps.say(
        f"then: python -m infra incident --stack {stack} --credential {token.credential} "
        "--verify   (the old token without echo, or on stdin)"
    )
    for note in notes:
        print(f"note: {note}", file=out)
    return 0


def _project() -> str:
    from infra.tools.runbook.driver import PROJECT_DIR

    for line in (PROJECT_DIR / "Pulumi.yaml").read_text().splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].strip()
    return "PROJECT"


def _parse_time(text: str, what: str = "--check-since") -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RotationError(
            f"{what} {text!r} is not a time; use ISO 8601, e.g. 2026-11-29T10:41:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def _check(
    token: PersonToken, repo: str, since_text: str, out: TextIO, environ: Mapping[str, str]
) -> int:
    """0 when GitHub's metadata says the secret was written at or after `since`, else 1."""
    from infra.tools.audit.github_api import GitHubApi

    since = _parse_time(since_text)
    place = token.place
    api = GitHubApi.from_env(environ)
    try:
        listed = api.paged(place.list_path(repo), key="secrets")
    except RentagpuError as error:
        raise RotationError(f"could not read {place.describe()} of {repo}: {error}") from None
    found = next((s for s in listed if s.get("name") == place.name), None)
    if found is None:
        print(f"NOT SET: {place.describe()} does not exist in {repo}", file=out)
        return 1
    written = str(found.get("updated_at") or found.get("created_at") or "")
    updated = _parse_time(written, f"GitHub's date of {place.name}")
    if updated < since:
        print(
            f"OLD: {place.describe()} was last written {updated:%Y-%m-%dT%H:%M:%SZ}, before "
            f"{since:%Y-%m-%dT%H:%M:%SZ}: set the new token with `{place.gh_set(repo)}`",
            file=out,
        )
        return 1
    print(
        f"ok: {place.describe()} was written {updated:%Y-%m-%dT%H:%M:%SZ} (GitHub shows no "
        "value: that it works, the next run of its jobs shows)",
        file=out,
    )
    return 0
