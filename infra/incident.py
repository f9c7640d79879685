"""`python -m infra incident --stack STACK --credential KIND [--verify]`: where a credential lives,
how to revoke and rotate it, and afterwards proof that nothing still holds the old one.

KIND is one of:
- `modal-token`       the CI deploy token (GitHub environment secrets MODAL_TOKEN_ID/_SECRET)
- `modal-read-token`  the read-only token of PR previews and drift checks (repository secrets)
- `aws-key`           the runtime IAM user's access key (access-key mode only)
- `github-token`      the GitHub provider's token (PULUMI_GITHUB_TOKEN, RENTAGPU_GITHUB_READ_TOKEN)

Without `--verify` the command prints every place the credential lives, then the exact commands to
revoke it and to rotate it. With `--verify` it takes the OLD credential (its id, and its secret if
known) from RENTAGPU_OLD_CREDENTIAL_ID / RENTAGPU_OLD_CREDENTIAL_SECRET or stdin (never argv) and
checks each place it can reach: the config of every stack, the stack's Pulumi state (which also
records what Pulumi last wrote into GitHub and the Modal secret), and the issuing system itself
(Modal lists and rejects tokens, AWS lists keys and refuses a deleted one, GitHub answers 401).
It exits 0 when nothing holds the old credential, 1 with a list of what still holds it or what
could not be checked. Output shows masked ids only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from infra import names
from infra.config import PROJECT, RawValue, SecretStr
from infra.errors import RentagpuError
from infra.rotation.aws_keys import AwsAccess, AwsKey
from infra.rotation.common import (
    config_holders,
    config_value,
    mask,
    read_credential,
    service_user_roles,
    state_holders,
)
from infra.rotation.driver import (
    ENVIRONMENTS,
    MODAL_SECRET_TYPE,
    PulumiCliDriver,
    StackDriver,
    other_stack_drivers,
)
from infra.rotation.modal_tokens import (
    MODAL_READ_TOKEN,
    MODAL_TOKEN,
    TOKEN_SLOTS,
    ModalToken,
    find_modal_token,
    identify_token,
)

CREDENTIALS = ("modal-token", "modal-read-token", "aws-key", "github-token")
OLD_ID_VARIABLE = "RENTAGPU_OLD_CREDENTIAL_ID"
OLD_SECRET_VARIABLE = "RENTAGPU_OLD_CREDENTIAL_SECRET"
GITHUB_ADMIN_SECRET = "PULUMI_GITHUB_TOKEN"
GITHUB_READ_SECRET = "RENTAGPU_GITHUB_READ_TOKEN"
GITHUB_API_VARIABLE = "GITHUB_API_URL"
DEFAULT_GITHUB_API = "https://api.github.com"


class IncidentError(RentagpuError):
    """The incident command could not do what was asked (not: a check found the old value)."""


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
            owner=config_value(raw, "githubOwner", "OWNER") or "OWNER",
            repository=config_value(raw, "githubRepository", "REPO") or "REPO",
            auth_mode=config_value(raw, "awsAuth", "oidc") or "oidc",
            serial=config_value(raw, "accessKeySerial", "1") or "1",
            app_name=config_value(raw, "modalAppName", "rentagpu-executor") or "",
            service_users=tuple(sorted(service_user_roles(raw))),
            has_read_token=f"{PROJECT}:modalReadTokenId" in raw,
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
            f"{env}-runtime-key-{facts.serial}",
        ),
        Place(
            "Modal",
            f"secret '{names.RUNTIME_SECRET_NAME}' in environment '{env}', keys AWS_ACCESS_KEY_ID "
            f"and AWS_SECRET_ACCESS_KEY; containers of app '{facts.app_name}' started before a "
            "rotation keep it in their environment until they stop",
        ),
        Place(
            "Pulumi state",
            f"{env}-runtime-key-{facts.serial} ({'aws:iam/accessKey:AccessKey'}: id, encrypted "
            f"secret) and {env}-modal-runtime-secret (ModalSecret values, encrypted)",
        ),
        HISTORY,
        Place(
            "stack config",
            f"no copy; {PROJECT}:accessKeySerial ({facts.serial}) is the lever that rotates it",
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
                f"{names.runtime_role_name(env)} > Revoke active sessions"
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


# ---------------------------------------------------------------------------------------------
# --verify
# ---------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    held: list[str] = field(default_factory=list)  # places that still hold the old credential
    unchecked: list[str] = field(default_factory=list)  # places that could not be checked
    clean: list[str] = field(default_factory=list)  # places checked and clean

    @property
    def ok(self) -> bool:
        return not self.held and not self.unchecked


def _github_token_status(token: str, environ: Mapping[str, str]) -> str:
    """ "rejected", "works as LOGIN", or "unknown: ..." from GitHub's GET /user."""
    import urllib.error
    import urllib.request

    base = (environ.get(GITHUB_API_VARIABLE) or DEFAULT_GITHUB_API).rstrip("/")
    request = urllib.request.Request(  # noqa: S310 - the API base is https or a test server
        f"{base}/user",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            login = json.loads(reply.read() or b"{}").get("login", "?")
            return f"works as '{login}'"
    except urllib.error.HTTPError as error:
        return "rejected" if error.code == 401 else f"unknown: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"unknown: {type(error).__name__}"


def verify(
    credential: str,
    driver: StackDriver,
    old_id: SecretStr,
    old_secret: SecretStr | None,
    *,
    peers: Mapping[str, StackDriver],
    environ: Mapping[str, str] | None = None,
) -> Verdict:
    environ = os.environ if environ is None else environ
    verdict = Verdict()
    needle = old_id.reveal()
    stack = driver.stack

    notes: list[str] = []
    held = config_holders(needle, {stack: driver, **peers}, notes)
    verdict.held += held
    verdict.unchecked += notes
    if not held:
        verdict.clean.append("config of stacks " + ", ".join([stack, *peers]))

    try:
        resources = driver.state_resources()
    except RentagpuError as error:
        verdict.unchecked.append(f"Pulumi state of stack '{stack}': {error}")
    else:
        holders = state_holders(resources, needle)
        for resource in holders:
            what = f"Pulumi state of stack '{stack}': {resource.type} {resource.name}"
            if resource.type == MODAL_SECRET_TYPE:
                what += f" (the Modal secret '{names.RUNTIME_SECRET_NAME}' as Pulumi last wrote it)"
            verdict.held.append(what)
        if not holders:
            verdict.clean.append(f"Pulumi state of stack '{stack}' ({len(resources)} resources)")

    if credential in TOKEN_SLOTS:
        _verify_modal(verdict, needle, old_id, old_secret)
    elif credential == "aws-key":
        _verify_aws(verdict, driver, old_id, old_secret, environ)
    else:
        status = _github_token_status(needle, environ)
        if status == "rejected":
            verdict.clean.append("GitHub rejects the old token (401)")
        elif status.startswith("works"):
            verdict.held.append(f"GitHub: the old token still authenticates, {status}")
        else:
            verdict.unchecked.append(f"GitHub: {status}")
    return verdict


def _verify_modal(
    verdict: Verdict, needle: str, old_id: SecretStr, old_secret: SecretStr | None
) -> None:
    try:
        holder = find_modal_token(needle)
    except RentagpuError as error:
        verdict.unchecked.append(f"Modal token lists: {error}")
    else:
        if holder:
            verdict.held.append(f"Modal: {holder} still exists")
        else:
            verdict.clean.append("Modal lists no such token")
    if old_secret is None:
        verdict.clean.append("(no old secret given: Modal's answer to the old token not tried)")
        return
    try:
        identity = identify_token(ModalToken(old_id, old_secret), "old token")
    except RentagpuError as error:
        verdict.unchecked.append(f"Modal TokenInfoGet with the old token: {error}")
        return
    if identity is not None:
        verdict.held.append(f"Modal: the old token still authenticates as {identity.describe()}")
    else:
        verdict.clean.append("Modal rejects the old token")


def _verify_aws(
    verdict: Verdict,
    driver: StackDriver,
    old_id: SecretStr,
    old_secret: SecretStr | None,
    environ: Mapping[str, str],
) -> None:
    raw = driver.get_config()
    env = config_value(raw, "environment", driver.stack) or driver.stack
    region = config_value(raw, "aws:region", "us-east-1") or "us-east-1"
    bucket = config_value(raw, "bucket", "") or ""
    prefix = config_value(raw, "inputPrefix", "inputs/") or "inputs/"
    user = names.runtime_user_name(env)
    aws = AwsAccess(region, environ)
    key = AwsKey(old_id, old_secret)
    try:
        live = aws.access_key_ids(user)
    except RentagpuError as error:
        verdict.unchecked.append(f"AWS IAM user {user}: {error}")
    else:
        if old_id.reveal() in live:
            verdict.held.append(f"AWS: IAM user {user} still has access key {key.masked}")
        else:
            verdict.clean.append(f"AWS: IAM user {user} has no key {key.masked}")
    if old_secret is None or not bucket:
        return
    check = aws.key_check(key, bucket, prefix)
    if check == "rejected":
        verdict.clean.append(f"AWS refuses the old key {key.masked}")
    else:
        verdict.held.append(
            f"AWS: the old key {key.masked} is not refused (ListObjectsV2: {check})"
        )


def render_verdict(credential: str, stack: str, old_id: SecretStr, verdict: Verdict) -> str:
    shown = mask(old_id.reveal())
    lines = [f"Verify: does anything still hold {credential} {shown} of stack '{stack}'?"]
    lines += [f"  ok: {c}" for c in verdict.clean]
    lines += [f"  STILL HELD: {h}" for h in verdict.held]
    lines += [f"  NOT CHECKED: {u}" for u in verdict.unchecked]
    if verdict.ok:
        lines.append(f"nothing reachable holds {shown} any more")
    else:
        lines.append(
            f"{len(verdict.held)} place(s) still hold it, {len(verdict.unchecked)} could not be "
            "checked: revoke/rotate (see `incident` without --verify) and run again"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "incident",
        help="where a credential lives, how to revoke and rotate it; --verify it is gone",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", required=True, choices=ENVIRONMENTS)
    parser.add_argument("--credential", required=True, choices=CREDENTIALS)
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check that nothing still holds the old credential (given on stdin or in env)",
    )
    parser.add_argument(
        "--old-from",
        choices=("env", "stdin"),
        default=None,
        help=f"where --verify reads the old credential: {OLD_ID_VARIABLE}/{OLD_SECRET_VARIABLE}"
        " (the default when set) or stdin",
    )
    parser.set_defaults(func=command)


def command(
    args: argparse.Namespace,
    *,
    drivers: Callable[[str], StackDriver] | None = None,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    make = drivers or (lambda stack: PulumiCliDriver(stack))
    out = out or sys.stdout
    environ = os.environ if environ is None else environ
    driver = make(args.stack)
    if not args.verify:
        notes: list[str] = []
        try:
            raw = driver.get_config()
        except RentagpuError as error:
            notes.append(f"stack config unreadable ({error}); names below use placeholders")
            raw = {}
        print(
            render_listing(args.credential, StackFacts.from_config(args.stack, raw), notes),
            file=out,
        )
        return 0
    source = args.old_from or ("env" if environ.get(OLD_ID_VARIABLE) else "stdin")
    old_id, old_secret = read_credential(
        source,
        id_variable=OLD_ID_VARIABLE,
        secret_variable=OLD_SECRET_VARIABLE,
        stdin=stdin or sys.stdin,
        environ=environ,
        prompt=f"old {args.credential}",
        ask_secret=args.credential != "github-token",  # a GitHub token is a single value
    )
    if args.credential == "github-token" and old_secret is not None:
        raise IncidentError("a GitHub token is one value: give it as the id, with no secret")
    verdict = verify(
        args.credential,
        driver,
        old_id,
        old_secret,
        peers=other_stack_drivers(args.stack, make),
        environ=environ,
    )
    print(render_verdict(args.credential, args.stack, old_id, verdict), file=out)
    return 0 if verdict.ok else 1
