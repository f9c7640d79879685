"""Where each credential of a stack lives, and the exact commands to revoke and rotate it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infra.core import names
from infra.core import resource_types as types
from infra.core.config import RawValue, config_value
from infra.core.config_schema import full_key
from infra.tools.runbook.holders import service_user_roles
from infra.tools.runbook.modal_tokens import (
    MODAL_READ_TOKEN,
    MODAL_TOKEN,
    TOKEN_SLOTS,
)

CREDENTIALS = ("modal-token", "modal-read-token", "aws-key", "github-token")
OLD_ID_VARIABLE = "RENTAGPU_OLD_CREDENTIAL_ID"
OLD_SECRET_VARIABLE = "RENTAGPU_OLD_CREDENTIAL_SECRET"
GITHUB_ADMIN_SECRET = "PULUMI_GITHUB_TOKEN"
GITHUB_READ_SECRET = "RENTAGPU_GITHUB_READ_TOKEN"
GITHUB_API_VARIABLE = "GITHUB_API_URL"
DEFAULT_GITHUB_API = "https://api.github.com"


@dataclass(frozen=True)
class StackFacts:
    """The non-secret facts of a stack the listing names, with the program's defaults."""

    stack: str
    owner: str
    repository: str
    auth_mode: str
    serial: str
    app_name: str
    service_users: tuple[str, ...]
    has_read_token: bool

    @classmethod
    def from_config(cls, stack: str, raw: Mapping[str, RawValue]) -> StackFacts:
        return cls(
            stack=stack,
            owner=config_value(raw, "githubOwner") or "OWNER",
            repository=config_value(raw, "githubRepository") or "REPO",
            auth_mode=config_value(raw, "awsAuth") or "",
            serial=config_value(raw, "accessKeySerial") or "",
            app_name=config_value(raw, "modalAppName") or "",
            service_users=tuple(sorted(service_user_roles(raw))),
            has_read_token=full_key("modalReadTokenId") in raw,
        )

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.repository}"


@dataclass(frozen=True)
class Place:
    system: str
    where: str


HISTORY = Place(
    "Pulumi state history",
    "every older checkpoint of the stack in the backend (Pulumi Cloud: stack history; "
    "self-managed: .pulumi/history and .pulumi/backups in the state bucket), encrypted with the "
    "stack's secrets provider: rotating makes those copies worthless; --verify does not search them",
)


def _token_places(slot_name: str, facts: StackFacts) -> list[Place]:
    slot = TOKEN_SLOTS[slot_name]
    env = facts.stack
    state_names = " and ".join(slot.state_resource_names(env))
    github = Place("GitHub", f"{slot.describe_github(env)} in {facts.repo}")
    if slot is MODAL_TOKEN:
        ci = Place(
            "CI logs",
            f"the deploy workflow (.github/workflows/deploy.yml) passes it to `pulumi up` in "
            f"environment '{env}'; GitHub masks exact values only, so search its run logs for "
            "the token, encoded or split",
        )
    else:
        ci = Place(
            "CI logs",
            "the preview and drift workflows (.github/workflows/preview.yml, drift.yml) pass it "
            "to `pulumi preview` / `pulumi refresh` for pull requests and on main; search their "
            "run logs for the token, encoded or split",
        )
    users = ", ".join(facts.service_users) or "none configured"
    return [
        Place(
            "stack config",
            f"{slot.id_key} and {slot.secret_key} in Pulumi.{env}.yaml (secure, encrypted)",
        ),
        Place(
            "stack config (rotation in progress)",
            f"{slot.previous_id_key} and {slot.previous_secret_key}: the old token kept until "
            "`rotate ... --revoke-old`",
        ),
        github,
        Place(
            "Pulumi state",
            f"GitHub secret resources {state_names} of stack '{env}' (values encrypted)",
        ),
        HISTORY,
        Place(
            "Modal",
            "the token itself: a service user's token (configured service users: "
            f"{users}) or a member's token (`modal workspace member-tokens list`)",
        ),
        ci,
        Place(
            "machines",
            "the shell of whoever ran `pulumi up` or `modal` with it, and ~/.modal.toml if "
            "`modal token set` stored it",
        ),
        Place("other stacks", "the same token in another stack's config (--verify checks)"),
    ]


def _aws_places(facts: StackFacts) -> list[Place]:
    env = facts.stack
    user = names.runtime_user_name(env)
    return [
        Place(
            "AWS IAM",
            f"access key of user {user} (path {names.iam_path(env)}), logical resource "
            f"{names.runtime_access_key_resource(env, facts.serial)}",
        ),
        Place(
            "Modal",
            f"secret '{names.RUNTIME_SECRET_NAME}' in environment '{env}', keys AWS_ACCESS_KEY_ID "
            f"and AWS_SECRET_ACCESS_KEY; containers of app '{facts.app_name}' started before a "
            "rotation keep it in their environment until they stop",
        ),
        Place(
            "Pulumi state",
            f"{names.runtime_access_key_resource(env, facts.serial)} ({types.AWS_ACCESS_KEY}: id, "
            f"encrypted secret) and {names.modal_runtime_secret_resource(env)} (ModalSecret "
            "values, encrypted)",
        ),
        HISTORY,
        Place(
            "stack config",
            f"no copy; {full_key('accessKeySerial')} ({facts.serial}) is the lever that rotates it",
        ),
        Place(
            "AWS CloudTrail",
            "every call signed with it: `aws cloudtrail lookup-events --lookup-attributes "
            "AttributeKey=AccessKeyId,AttributeValue=<key id>`",
        ),
        Place(
            "logs",
            f"the Modal logs of app '{facts.app_name}' if it ever printed its environment; CI "
            "never sees this key",
        ),
    ]


def _github_places(facts: StackFacts) -> list[Place]:
    env = facts.stack
    return [
        Place(
            "GitHub",
            f"environment secret {GITHUB_ADMIN_SECRET} of environment '{env}' in {facts.repo} "
            "(the provider's admin token: environments, secrets, rulesets)",
        ),
        Place(
            "GitHub",
            f"repository secret {GITHUB_READ_SECRET} of {facts.repo} (read-only, for previews "
            "and drift checks)",
        ),
        Place(
            "stack config",
            "none by design; github:token if someone set it (--verify checks every key)",
        ),
        Place(
            "Pulumi state",
            "the default GitHub provider's inputs, only if github:token was set in config "
            "(a token from the GITHUB_TOKEN variable is not stored)",
        ),
        HISTORY,
        Place(
            "CI logs",
            "GITHUB_TOKEN of the `pulumi` steps in deploy.yml (admin), preview.yml and drift.yml "
            "(read-only); search their run logs for the token, encoded or split",
        ),
        Place(
            "machines",
            "the shell of whoever ran `pulumi up` with it; `gh auth` storage (~/.config/gh)",
        ),
    ]


def places(credential: str, facts: StackFacts) -> list[Place]:
    if credential in TOKEN_SLOTS:
        return _token_places(credential, facts)
    if credential == "aws-key":
        return _aws_places(facts)
    return _github_places(facts)


def _verify_hint(credential: str, stack: str) -> str:
    what = "the old token" if credential == "github-token" else "the old id and secret"
    return (
        f"python -m infra incident --stack {stack} --credential {credential} --verify   (asks "
        f"for {what} without echo; or pipe them in, or export {OLD_ID_VARIABLE}"
        + ("" if credential == "github-token" else f"/{OLD_SECRET_VARIABLE}")
        + " read with `read -rs`: never type them on a command line)"
    )


def actions(credential: str, facts: StackFacts) -> tuple[list[str], list[str]]:
    """(revoke now, rotate) as exact commands, for this stack."""
    env = facts.stack
    today = "$(date +%Y-%m-%d)"
    if credential in TOKEN_SLOTS:
        slot = TOKEN_SLOTS[credential]
        kind = "ci" if slot is MODAL_TOKEN else "read"
        rotate = [
            f"python -m infra rotate {credential} --stack {env} --create-service-user "
            f"rentagpu-{kind}-{env}-{today} --revoke-old",
            "  (creates a new service user, switches config and GitHub with `pulumi up`, revokes "
            "the old token, checks Modal refuses it; needs a workspace manager's MODAL_TOKEN_*)",
            _verify_hint(credential, env),
        ]
        revoke = [
            "if the token is being abused, cut it first (deploys fail until the rotation):",
            "  a service user's token: modal workspace service-users delete <name>",
            "  a member token: modal workspace member-tokens disable <token id>",
            "then rotate as below (it works with an already revoked old token)",
        ]
        if slot is MODAL_READ_TOKEN and not facts.has_read_token:
            revoke.insert(0, f"note: stack '{env}' config has no read token ({slot.id_key})")
        return revoke, rotate
    if credential == "aws-key":
        user = names.runtime_user_name(env)
        if facts.auth_mode != "access-key":
            note = (
                f"stack '{env}' runs with awsAuth={facts.auth_mode}: there is no long-lived key. "
                "Role sessions last at most 1 hour; to cut live ones now: IAM console > Roles > "
                f"{names.role_name(env, 'runtime')} > Revoke active sessions"
            )
            return [note], [note]
        revoke = [
            f"aws iam list-access-keys --user-name {user}",
            f"aws iam update-access-key --user-name {user} --access-key-id <key id> "
            "--status Inactive   (immediate and reversible; the app fails until the rotation)",
        ]
        rotate = [
            f"python -m infra rotate aws-key --stack {env}",
            "  (bumps accessKeySerial; `pulumi up` creates the new key, updates the Modal secret, "
            "smoke-tests, deletes the old key; then checks AWS holds only the new key)",
            _verify_hint(credential, env),
        ]
        return revoke, rotate
    revoke = [
        "GitHub > Settings > Developer settings > Personal access tokens > the token > Revoke",
        "  (organization owners: Organization settings > Personal access tokens > Active tokens)",
    ]
    rotate = [
        f"create a fine-grained token for {facts.repo} only: Administration, Environments, "
        "Secrets, Variables read and write; Metadata read",
        f"gh secret set {GITHUB_ADMIN_SECRET} --env {env} --repo {facts.repo}   (prompts, or "
        "pipe the value in: never on the command line)",
        f"for the read-only one: gh secret set {GITHUB_READ_SECRET} --repo {facts.repo} with a "
        "token that can only read",
        "re-run the deploy workflow, then revoke the old token",
        _verify_hint("github-token", env),
    ]
    return revoke, rotate


def render_listing(credential: str, facts: StackFacts, notes: list[str]) -> str:
    lines = [f"Incident: {credential} of stack '{facts.stack}'", "", "Where it lives:"]
    lines += [f"  - {p.system}: {p.where}" for p in places(credential, facts)]
    revoke, rotate = actions(credential, facts)
    lines += ["", "Revoke:"] + [f"  {line}" for line in revoke]
    lines += ["", "Rotate:"] + [f"  {line}" for line in rotate]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
