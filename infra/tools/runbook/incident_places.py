"""Where each credential of a stack lives, and the exact commands to revoke and rotate it.

One `Listing` per incident kind (`CREDENTIALS`): the places (`Place`), what to run to cut it now,
what to run to replace it, and whether `--verify` can check it (and why not, when it cannot). The
Modal kinds are here; the AWS, Pulumi and GitHub ones in `incident_accounts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.core import names
from infra.core import resource_types as types
from infra.core.config import RawValue, config_value
from infra.tools.runbook.holders import service_user_roles
from infra.tools.runbook.modal_tokens import (
    FALLBACK_ID_KEY,
    FALLBACK_SECRET_KEY,
    PREVIOUS_ID_KEY,
    fallback_user_name,
    uses_fallback,
)
from infra.tools.runbook.places import ci_token_places, describe, readers

OLD_ID_VARIABLE = "RENTAGPU_OLD_CREDENTIAL_ID"
OLD_SECRET_VARIABLE = "RENTAGPU_OLD_CREDENTIAL_SECRET"


@dataclass(frozen=True)
class StackFacts:
    """The non-secret facts of a stack the listing names, with the program's defaults."""

    stack: str
    environment: str
    owner: str
    repository: str
    auth_mode: str
    serial: str
    app_name: str
    service_users: tuple[str, ...]
    ci_token_serial: int
    fallback: bool  # the deploy token comes from stack config, not minted

    @classmethod
    def from_config(cls, stack: str, raw: Mapping[str, RawValue]) -> StackFacts:
        return cls(
            stack=stack,
            environment=config_value(raw, "environment") or stack,
            owner=config_value(raw, "githubOwner") or "OWNER",
            repository=config_value(raw, "githubRepository") or "REPO",
            auth_mode=config_value(raw, "awsAuth") or "",
            serial=config_value(raw, "accessKeySerial") or "",
            app_name=config_value(raw, "modalAppName") or "",
            service_users=tuple(sorted(service_user_roles(raw))),
            ci_token_serial=int(config_value(raw, "ciTokenSerial") or 1),
            fallback=uses_fallback(raw),
        )

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.repository}"


@dataclass(frozen=True)
class Place:
    system: str
    where: str


@dataclass
class Listing:
    places: list[Place]
    revoke: list[str]
    rotate: list[str]
    no_verify: str | None = None  # why `--verify` cannot check this kind; None: it can
    notes: list[str] = field(default_factory=list)


HISTORY = Place(
    "Pulumi state history",
    "every older checkpoint of the stack in the backend (Pulumi Cloud: stack history; "
    "self-managed: .pulumi/history and .pulumi/backups in the state bucket), encrypted with the "
    "stack's secrets provider: rotating makes those copies worthless; --verify does not search them",
)


def verify_hint(credential: str, stack: str, single: bool = False) -> str:
    what = "the old token" if single else "the old id and secret"
    variables = OLD_ID_VARIABLE if single else f"{OLD_ID_VARIABLE}/{OLD_SECRET_VARIABLE}"
    return (
        f"python -m infra incident --stack {stack} --credential {credential} --verify   (asks "
        f"for {what} without echo; or pipe it in, or export {variables} read with `read -rs`: "
        "never type it on a command line)"
    )


def github_places(places, facts: StackFacts) -> list[Place]:
    """The GitHub secrets, and the run logs of each job that receives them."""
    found = [Place("GitHub", f"{describe(places)} in {facts.repo}")]
    jobs = sorted({job for place in places for job in readers(place)})
    if jobs:
        found.append(
            Place(
                "CI logs",
                f"the runs of {', '.join(jobs)}; GitHub masks exact values only, so search "
                "their logs for the token, encoded or split",
            )
        )
    return found


def ci_token_listing(purpose: str, facts: StackFacts) -> Listing:
    """CI's Modal token of `purpose`: minted by `pulumi up`, or (deploy only) the fallback."""
    env, stack = facts.environment, facts.stack
    credential = f"modal-{purpose}-token"
    places = ci_token_places(env, purpose)
    state = (
        f"{names.ci_token_resource(env, purpose, facts.ci_token_serial)} ({types.MODAL_CI_TOKEN})"
    )
    secrets = " and ".join(names.github_secret_resource(p.location or env, p.name) for p in places)
    if purpose == "deploy" and facts.fallback:
        return _fallback_listing(facts, places, state, secrets)
    user = names.ci_service_user(env, purpose, facts.ci_token_serial)
    listing = Listing(
        places=[
            *github_places(places, facts),
            Place(
                "Modal",
                f"the only token of service user '{user}' (role {names.CI_TOKEN_ROLES[purpose]} "
                f"in '{env}', scoped, expiring), minted by `pulumi up`; no person ever saw it",
            ),
            Place(
                "Pulumi state",
                f"{state}: the service user's id and the token's id, and the token sealed for "
                f"GitHub's key (only GitHub can open it); GitHub secret resources {secrets} hold "
                "the same sealed values. No plaintext in config or state",
            ),
            Place("stack config", f"none: ciTokenSerial ({facts.ci_token_serial}) is the lever"),
        ],
        revoke=[
            "cut it now (CI jobs holding it fail until the rotation):",
            f"  modal workspace service-users delete {user}",
            "then rotate as below: it mints new service users whatever the old ones' state",
        ],
        rotate=[
            f"python -m infra rotate ci-tokens --stack {stack}",
            "  (bumps ciTokenSerial; a full `pulumi up`, an admin's, mints new service users, "
            "seals them into GitHub, deletes the old ones; then checks Modal; needs a workspace "
            "manager's MODAL_TOKEN_* and the admin's GITHUB_TOKEN)",
            verify_hint(credential, stack),
        ],
    )
    if purpose == "deploy":
        listing.notes.append(
            "the deploy token deploys the app, which runs as the runtime principal: review "
            f"`python -m infra audit --stack {stack}` for what it did"
        )
    return listing


def _fallback_listing(facts: StackFacts, places, state: str, secrets: str) -> Listing:
    stack, env = facts.stack, facts.environment
    users = ", ".join(facts.service_users) or "none configured"
    return Listing(
        places=[
            Place(
                "stack config",
                f"{FALLBACK_ID_KEY} and {FALLBACK_SECRET_KEY} in Pulumi.{stack}.yaml (secure: "
                "every reader of the stack can decrypt it)",
            ),
            Place(
                "stack config (rotation in progress)",
                f"{PREVIOUS_ID_KEY} and its secret: the old token kept until "
                "`rotate modal-token ... --revoke-old`",
            ),
            *github_places(places, facts),
            Place(
                "Pulumi state",
                f"{state}: the adopted token as encrypted inputs; GitHub secret resources "
                f"{secrets} (sealed for GitHub)",
            ),
            HISTORY,
            Place(
                "Modal",
                f"the token itself: a service user's (configured service users: {users})",
            ),
            Place(
                "machines",
                "the shell of whoever made it or ran `pulumi up` with it, and ~/.modal.toml if "
                "`modal token set` stored it",
            ),
            Place("other stacks", "the same token in another stack's config (--verify checks)"),
        ],
        revoke=[
            "if it is being abused, cut it first (deploys fail until the rotation):",
            "  modal workspace service-users delete <its service user>",
            "then rotate as below (it works with an already revoked old token)",
        ],
        rotate=[
            f"python -m infra rotate modal-token --stack {stack} --create-service-user "
            f"{fallback_user_name()} --revoke-old",
            "  (creates a scoped service user, switches config and GitHub with `pulumi up`, "
            "revokes the old token, checks Modal refuses it)",
            f"or stop using the fallback: `pulumi config rm --stack {stack} {FALLBACK_ID_KEY}` "
            f"and `{FALLBACK_SECRET_KEY}`, then `python -m infra rotate ci-tokens --stack {stack}`"
            f" mints one in '{env}'",
            verify_hint("modal-deploy-token", stack),
        ],
    )


def service_user_listing(facts: StackFacts) -> Listing:
    """Service users the config gives a role (`modalServiceUserRoles`): their tokens are made and
    kept outside this project."""
    stack, env = facts.stack, facts.environment
    users = facts.service_users
    deletes = [f"  modal workspace service-users delete {user}" for user in users]
    return Listing(
        places=[
            Place(
                "Modal",
                f"service users with a role in '{env}' from modalServiceUserRoles: "
                + (", ".join(users) or "none configured"),
            ),
            Place(
                "elsewhere",
                "their tokens were made and kept outside this project: whoever made each "
                "knows where it went",
            ),
        ],
        revoke=[
            "delete the service user whose token leaked (its one token goes with it):",
            *deletes,
        ]
        if deletes
        else ["stack '" + stack + "' configures no such service user: nothing to revoke"],
        rotate=[
            "make a new one (`modal workspace service-users create NAME`), put it in "
            f"modalServiceUserRoles in place of the old (`pulumi config set --path --stack {stack}"
            " 'modalServiceUserRoles.NAME' ROLE`) and run `pulumi up`",
            verify_hint("modal-service-user", stack),
        ],
    )


def admin_modal_listing(facts: StackFacts) -> Listing:
    return Listing(
        places=[
            Place(
                "machines",
                "the workspace manager's own shell (MODAL_TOKEN_ID/_SECRET of their `pulumi up`) "
                "and ~/.modal.toml (or MODAL_CONFIG_PATH); never in stack config, state or GitHub",
            ),
            Place("Modal", "a member token of that person (`modal workspace member-tokens list`)"),
        ],
        revoke=[
            "modal workspace member-tokens disable <token id>   (immediate, reversible)",
            "or delete it: modal workspace member-tokens delete <token id>; or Modal's dashboard, "
            "Settings > Tokens",
        ],
        rotate=[
            "no `rotate` kind: it is a person's own token. `modal token new` makes a new one, "
            "then delete the old as above",
            verify_hint("modal-admin-token", facts.stack),
        ],
    )
