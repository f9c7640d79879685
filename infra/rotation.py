"""`python -m infra rotate ...`: credential rotation as commands that cannot skip a step.

    python -m infra rotate modal-token      --stack STACK (--create-service-user NAME | --new-token-from stdin|env) [--revoke-old]
    python -m infra rotate modal-read-token --stack STACK (same options)
    python -m infra rotate modal-token      --stack STACK --resume [--revoke-old]
    python -m infra rotate aws-key          --stack STACK [--resume]

Modal token (the CI token in the GitHub environment secrets, or the read-only one):
  1. read the current token from the stack's encrypted config and ask Modal who it belongs to;
  2. obtain the new one: create a service user through Modal's API (in modal 1.6.4 a service user
     has exactly one token, shown only at creation, so the secret never reaches a terminal), or read
     it from stdin / RENTAGPU_NEW_MODAL_TOKEN_ID+_SECRET. Never from argv, never echoed;
  3. check it (TokenInfoGet: accepted, same workspace, not the old token);
  4. keep the old token in the encrypted config (`rentagpu-rotation:previous...`, which the program
     never reads) so a later step can revoke it exactly, then switch the config to the new token and
     grant a new service user the old one's role;
  5. `pulumi up` replaces the GitHub secrets and sets the role; the old token stays valid in Modal,
     so whichever token GitHub holds works throughout;
  6. check both tokens: the new one reaches the stack's Modal environment, the old one still works;
  7. with --revoke-old (now, or later with --resume --revoke-old): refuse while any stack config
     still holds the old token, revoke it (delete its service user, or delete the member token),
     check Modal now rejects it, and drop the kept copy from the config. Without it, say exactly
     what to revoke and how.

AWS key (access-key mode): bump `accessKeySerial` and `pulumi up`. The serial names a new logical
`aws.iam.AccessKey`, so Pulumi creates the new key, writes it into the Modal secret (and the deploy
stage smoke-tests the app) and deletes the old key only at the end of a successful update; a failure
anywhere leaves the old key in place. The command then checks in AWS that only the new key exists,
that it works (ListObjectsV2 on the input prefix) and that the old one is refused. A failed `up` is
reported with the old key's state checked for real, and `--resume` finishes it without a new bump.

The stack is driven through `StackDriver` so tests can run all of this without the Pulumi CLI;
`PulumiCliDriver` is the real one. Output names keys, resources and masked ids only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from infra import names
from infra.config import PROJECT, RawValue, SecretStr
from infra.errors import RentagpuError

ENVIRONMENTS = ("dev", "prod")
PROJECT_DIR = Path(__file__).resolve().parent.parent
ROTATION_NAMESPACE = "rentagpu-rotation"  # config the program never reads (infra/config.py)
ACCESS_KEY_TYPE = "aws:iam/accessKey:AccessKey"
MODAL_SECRET_TYPE = "pulumi-python:dynamic/rentagpu:ModalSecret"
NEW_TOKEN_ID_VARIABLE = "RENTAGPU_NEW_MODAL_TOKEN_ID"
NEW_TOKEN_SECRET_VARIABLE = "RENTAGPU_NEW_MODAL_TOKEN_SECRET"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"


class RotationError(RentagpuError):
    """A rotation step failed or was refused; the message says what still works and what next."""


class StackCommandError(RentagpuError):
    """A `pulumi` command failed; the message names the command (never a value) and its exit."""


class StackUpError(StackCommandError):
    """`pulumi up` failed."""


# ---------------------------------------------------------------------------------------------
# Driving a stack
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateResource:
    """One resource of the stack's current checkpoint; outputs with secrets decrypted."""

    type: str
    name: str
    id: str
    outputs: Mapping[str, Any] = field(repr=False)


class StackDriver(Protocol):
    """What the commands need from a stack; `PulumiCliDriver` runs the real `pulumi` CLI."""

    stack: str

    def get_config(self) -> dict[str, RawValue]:
        """Every config key of the stack (`ns:key`), secure values decrypted, flagged secret."""
        ...

    def set_config(self, key: str, value: str, *, secret: bool, path: bool = False) -> None: ...

    def remove_config(self, key: str, *, path: bool = False) -> None: ...

    def up(self) -> None:
        """Run the update; raise `StackUpError` when it fails."""
        ...

    def outputs(self) -> dict[str, Any]: ...

    def state_resources(self) -> list[StateResource]: ...


@dataclass(frozen=True)
class PulumiCall:
    """One `pulumi` invocation. `stdin` carries values (secrets included): never argv."""

    argv: tuple[str, ...]
    stdin: str | None = field(default=None, repr=False)
    capture: bool = True  # False streams to the user's terminal (`pulumi up` shows progress)


@dataclass(frozen=True)
class CompletedCall:
    returncode: int
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)


def run_pulumi(call: PulumiCall, cwd: Path) -> CompletedCall:
    """Run one call; a value goes through a pipe, so no process list or shell history shows it."""
    try:
        done = subprocess.run(  # noqa: S603 - argv built by PulumiCliDriver, no shell
            list(call.argv),
            input=call.stdin if call.stdin is not None else None,
            stdin=None if call.stdin is not None else subprocess.DEVNULL,
            capture_output=call.capture,
            text=True,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise StackCommandError(
            f"`{call.argv[0]}` was not found: install the Pulumi CLI "
            "(https://www.pulumi.com/docs/iac/download-install/) and log in to the stack's backend"
        ) from None
    return CompletedCall(done.returncode, done.stdout or "", done.stderr or "")


class PulumiCliDriver:
    """`StackDriver` over the `pulumi` CLI, run in the project directory."""

    def __init__(
        self,
        stack: str,
        *,
        runner: Callable[[PulumiCall], CompletedCall] | None = None,
        pulumi: str = "pulumi",
        cwd: Path = PROJECT_DIR,
    ) -> None:
        self.stack = stack
        self._pulumi = pulumi
        self._runner = runner or (lambda call: run_pulumi(call, cwd))

    # The argv of each operation, separate so tests can check them without running anything.
    def config_call(self) -> PulumiCall:
        return PulumiCall(
            (self._pulumi, "config", "--stack", self.stack, "--json", "--show-secrets")
        )

    def set_config_call(self, key: str, value: str, *, secret: bool, path: bool) -> PulumiCall:
        mode = "--secret" if secret else "--plaintext"
        flags = (mode, "--path") if path else (mode,)
        return PulumiCall(
            (self._pulumi, "config", "set", "--stack", self.stack, *flags, key), stdin=value
        )

    def remove_config_call(self, key: str, *, path: bool) -> PulumiCall:
        flags = ("--path",) if path else ()
        return PulumiCall((self._pulumi, "config", "rm", "--stack", self.stack, *flags, key))

    def up_call(self) -> PulumiCall:
        return PulumiCall((self._pulumi, "up", "--yes", "--stack", self.stack), capture=False)

    def outputs_call(self) -> PulumiCall:
        # The program exports no secret, so no --show-secrets here.
        return PulumiCall((self._pulumi, "stack", "output", "--stack", self.stack, "--json"))

    def export_call(self) -> PulumiCall:
        # Secrets are needed: an old key's secret to prove it is refused, values to search.
        return PulumiCall(
            (self._pulumi, "stack", "export", "--stack", self.stack, "--show-secrets")
        )

    def _run(self, call: PulumiCall, error: type[StackCommandError] = StackCommandError) -> str:
        done = self._runner(call)
        if done.returncode != 0:
            last = (done.stderr or "").strip().splitlines()[-1:] or [""]
            detail = _redact(last[0], [call.stdin or ""])[:300]
            raise error(
                f"`{' '.join(call.argv)}` exited {done.returncode}"
                + (f": {detail}" if detail else "")
            )
        return done.stdout

    def get_config(self) -> dict[str, RawValue]:
        from infra.plan import config_from_json

        raw = config_from_json(self._run(self.config_call()))
        return {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in raw.items()}

    def set_config(self, key: str, value: str, *, secret: bool, path: bool = False) -> None:
        self._run(self.set_config_call(key, value, secret=secret, path=path))

    def remove_config(self, key: str, *, path: bool = False) -> None:
        self._run(self.remove_config_call(key, path=path))

    def up(self) -> None:
        self._run(self.up_call(), StackUpError)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self._run(self.outputs_call()) or "{}")

    def state_resources(self) -> list[StateResource]:
        return resources_from_export(json.loads(self._run(self.export_call())))


_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"


def _unwrap_export(value: Any) -> Any:
    """Undo the secret envelope of `pulumi stack export --show-secrets` ({sig, plaintext: JSON})."""
    if isinstance(value, dict):
        if _SECRET_SIG_KEY in value:
            if "plaintext" in value:
                return _unwrap_export(json.loads(value["plaintext"]))
            if "value" in value:
                return _unwrap_export(value["value"])
            return None  # still encrypted: the export was made without --show-secrets
        return {k: _unwrap_export(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_export(v) for v in value]
    return value


def resources_from_export(document: Mapping[str, Any]) -> list[StateResource]:
    resources = (document.get("deployment") or {}).get("resources") or []
    return [
        StateResource(
            type=str(r.get("type", "")),
            name=str(r.get("urn", "")).rsplit("::", 1)[-1],
            id=str(r.get("id", "")),
            outputs=_unwrap_export(r.get("outputs") or {}),
        )
        for r in resources
    ]


def other_stack_drivers(stack: str, make: Callable[[str], StackDriver]) -> dict[str, StackDriver]:
    return {other: make(other) for other in ENVIRONMENTS if other != stack}


# ---------------------------------------------------------------------------------------------
# Small shared pieces: masking, reading credentials without argv, the step printer
# ---------------------------------------------------------------------------------------------


def mask(value: str) -> str:
    """A recognisable stand-in for a credential id: its kind prefix and last four characters."""
    if len(value) < 12:
        return "…"
    prefix = value[:3] if value[2] == "-" else value[:4]
    return f"{prefix}…{value[-4:]}"


def _redact(text: str, secrets: Iterable[str]) -> str:
    for value in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, "[secret]")
    return text


_ID_NAMES = ("token_id", "tokenid", "modal_token_id", "accesskeyid", "aws_access_key_id", "id")
_SECRET_NAMES = (
    "token_secret",
    "tokensecret",
    "modal_token_secret",
    "secretaccesskey",
    "aws_secret_access_key",
    "secret",
)


def parse_credential_text(text: str) -> tuple[str, str | None]:
    """(id, secret or None) from what a user pipes in.

    Accepted: the JSON of `modal workspace service-users create NAME --json` or of
    `aws iam create-access-key` (an `AccessKey` object inside is fine); `NAME=VALUE` lines such as
    `export MODAL_TOKEN_ID=...`; or the id on the first line and the secret on the second.
    Errors never quote the input.
    """
    stripped = text.strip()
    if not stripped:
        raise RotationError("nothing was read: expected a credential id (and secret) on stdin")
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            raise RotationError("stdin looked like JSON but is not valid JSON") from None
        if isinstance(document, dict) and isinstance(document.get("AccessKey"), dict):
            document = document["AccessKey"]
        fields = {str(k).lower(): v for k, v in (document or {}).items()}
        found_id = next((fields[n] for n in _ID_NAMES if isinstance(fields.get(n), str)), None)
        secret = next((fields[n] for n in _SECRET_NAMES if isinstance(fields.get(n), str)), None)
        if not found_id:
            raise RotationError(
                "the JSON on stdin has no token_id / AccessKeyId field (the values were not shown)"
            )
        return found_id.strip(), secret.strip() if secret else None
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if all("=" in line for line in lines):
        pairs = {}
        for line in lines:
            key, _, value = line.removeprefix("export ").partition("=")
            pairs[key.strip().lower()] = value.strip().strip("'\"")
        found_id = next((v for k, v in pairs.items() if k.endswith(("token_id", "key_id"))), None)
        secret = next(
            (v for k, v in pairs.items() if k.endswith(("token_secret", "secret_access_key"))),
            None,
        )
        if not found_id:
            raise RotationError("no *_TOKEN_ID= or *_KEY_ID= line on stdin (values not shown)")
        return found_id, secret
    if len(lines) > 2:
        raise RotationError("expected at most two lines on stdin: the id, then the secret")
    return lines[0], lines[1] if len(lines) == 2 else None


def read_credential(
    source: str,
    *,
    id_variable: str,
    secret_variable: str,
    stdin: TextIO,
    environ: Mapping[str, str],
    prompt: str,
    ask_secret: bool = True,
) -> tuple[SecretStr, SecretStr | None]:
    """Read a credential from the environment or stdin; a terminal gets a prompt without echo."""
    if source == "env":
        found_id = environ.get(id_variable, "").strip()
        if not found_id:
            raise RotationError(f"{id_variable} is not set (and {secret_variable} with it)")
        secret = environ.get(secret_variable, "").strip() or None
        return SecretStr(found_id), SecretStr(secret) if secret else None
    if stdin.isatty():
        import getpass

        found_id = getpass.getpass(f"{prompt}{' id' if ask_secret else ''} (not echoed): ").strip()
        secret = None
        if ask_secret:
            secret = getpass.getpass(f"{prompt} secret (not echoed, may be empty): ").strip()
        if not found_id:
            raise RotationError("nothing was entered")
    else:
        found_id, secret = parse_credential_text(stdin.read())
    return SecretStr(found_id), SecretStr(secret) if secret else None


class Steps:
    """Prints numbered steps, so a user sees exactly where a run stopped."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        print(f"[{self.number}/{self.total}] {title}", file=self.out, flush=True)

    def say(self, text: str) -> None:
        for line in text.splitlines():
            print(f"      {line}", file=self.out, flush=True)


def config_value(raw: Mapping[str, RawValue], key: str, default: str | None = None) -> str | None:
    full = key if ":" in key else f"{PROJECT}:{key}"
    found = raw.get(full)
    return found.value if found is not None and found.value != "" else default


def role_key(user: str) -> str:
    """Config path of one service user's role, in the form `pulumi config set --path` takes."""
    if "." in user:
        return f'{PROJECT}:modalServiceUserRoles["{user}"]'
    return f"{PROJECT}:modalServiceUserRoles.{user}"


def service_user_roles(raw: Mapping[str, RawValue]) -> dict[str, str]:
    text = config_value(raw, "modalServiceUserRoles")
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        value = {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
# Modal tokens
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSlot:
    """Where one Modal token of a stack lives: config keys, GitHub secrets, default role."""

    credential: str
    id_key: str
    secret_key: str
    default_role: str
    github_scope: str  # "environment" or "repository"

    @property
    def previous_id_key(self) -> str:
        return _previous(self.id_key)

    @property
    def previous_secret_key(self) -> str:
        return _previous(self.secret_key)

    def github_secrets(self, environment: str) -> tuple[str, str]:
        if self.github_scope == "environment":
            return names.GITHUB_TOKEN_SECRETS  # type: ignore[return-value]
        from infra.github import repository_name

        return (
            repository_name(environment, "MODAL_READ_TOKEN_ID"),
            repository_name(environment, "MODAL_READ_TOKEN_SECRET"),
        )

    def state_resource_names(self, environment: str) -> tuple[str, ...]:
        from infra.github import slug

        return tuple(f"{environment}-{slug(n)}" for n in self.github_secrets(environment))


def _previous(key: str) -> str:
    """`rentagpu:modalTokenId` -> `rentagpu-rotation:previousModalTokenId`."""
    short = key.split(":", 1)[1]
    return f"{ROTATION_NAMESPACE}:previous{short[0].upper()}{short[1:]}"


MODAL_TOKEN = TokenSlot(
    "modal-token",
    f"{PROJECT}:modalTokenId",
    f"{PROJECT}:modalTokenSecret",
    "contributor",
    "environment",
)
MODAL_READ_TOKEN = TokenSlot(
    "modal-read-token",
    f"{PROJECT}:modalReadTokenId",
    f"{PROJECT}:modalReadTokenSecret",
    "viewer",
    "repository",
)
TOKEN_SLOTS = {slot.credential: slot for slot in (MODAL_TOKEN, MODAL_READ_TOKEN)}


@dataclass(frozen=True)
class ModalToken:
    id: SecretStr = field(repr=False)
    secret: SecretStr = field(repr=False)

    def values(self) -> tuple[str, str]:
        return self.id.reveal(), self.secret.reveal()

    @property
    def masked(self) -> str:
        return mask(self.id.reveal())


@dataclass(frozen=True)
class TokenIdentity:
    """Who a token belongs to, as Modal's TokenInfoGet reports it (names and ids are not secret)."""

    kind: str  # "service_user" or "user"
    principal: str
    workspace_id: str
    workspace_name: str

    def describe(self) -> str:
        who = "service user" if self.kind == "service_user" else "member"
        return f"{who} '{self.principal}' of workspace '{self.workspace_name}'"


def _modal_environ(token: ModalToken | None) -> dict[str, str]:
    from infra.modal_hook.client import TOKEN_ID_VARIABLE, TOKEN_SECRET_VARIABLE

    environ = dict(os.environ)
    if token is not None:
        environ[TOKEN_ID_VARIABLE], environ[TOKEN_SECRET_VARIABLE] = token.values()
    return environ


def identify_token(token: ModalToken, what: str) -> TokenIdentity | None:
    """Ask Modal who `token` is (TokenInfoGet); None when Modal rejects it."""
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    async def operation(api: ModalApi) -> TokenIdentity:
        from modal_proto import api_pb2

        reply = await api.call("TokenInfoGet", api_pb2.TokenInfoGetRequest())
        if reply.HasField("service_user_identity"):
            kind, principal = "service_user", reply.service_user_identity.service_user_name
        else:
            kind, principal = "user", reply.user_identity.username
        return TokenIdentity(kind, principal, reply.workspace_id, reply.workspace_name)

    try:
        return run_modal(
            f"check the {what} with Modal",
            operation,
            environ=_modal_environ(token),
            secrets=token.values(),
        )
    except ModalCallError as error:
        if error.failure is Failure.AUTH:
            return None
        raise


def reaches_environment(token: ModalToken, environment: str) -> bool:
    """Whether `token` can look up the runtime secret in the stack's Modal environment.

    That is what CI's `pulumi up` and deploy do first, so it proves the role, not just the token.
    """
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    async def operation(api: ModalApi) -> bool:
        from modal_proto import api_pb2

        request = api_pb2.SecretGetOrCreateRequest(
            deployment_name=names.RUNTIME_SECRET_NAME, environment_name=environment
        )
        await api.call("SecretGetOrCreate", request)
        return True

    try:
        return run_modal(
            f"reach Modal environment '{environment}'",
            operation,
            environ=_modal_environ(token),
            secrets=token.values(),
        )
    except ModalCallError as error:
        if error.failure in (Failure.AUTH, Failure.PERMISSION_DENIED, Failure.NOT_FOUND):
            return False
        raise


def create_service_user(name: str) -> ModalToken:
    """A new service user and its token, made with the operator's token (MODAL_TOKEN_*)."""
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    async def operation(api: ModalApi) -> ModalToken:
        from modal_proto import api_pb2

        reply = await api.call("ServiceUserCreate", api_pb2.ServiceUserCreateRequest(name=name))
        return ModalToken(SecretStr(reply.token_id), SecretStr(reply.token_secret))

    try:
        return run_modal(f"create Modal service user '{name}'", operation)
    except ModalCallError as error:
        if error.failure is Failure.ALREADY_EXISTS:
            suggestion = f"rentagpu-ci-{datetime.date.today():%Y-%m-%d}"
            raise RotationError(
                f"Modal service user '{name}' already exists and its token cannot be shown "
                f"again; pick a new name (e.g. --create-service-user {suggestion})"
            ) from None
        raise


def revoke_modal_token(
    old: ModalToken, old_identity: TokenIdentity | None, new_identity: TokenIdentity | None
) -> str:
    """Revoke `old` with the operator's token; return what was done, in words."""
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    own_user = (
        old_identity is not None
        and old_identity.kind == "service_user"
        and (new_identity is None or new_identity.principal != old_identity.principal)
    )

    async def operation(api: ModalApi) -> str:
        from modal_proto import api_pb2

        try:
            if own_user:
                assert old_identity is not None
                request = api_pb2.ServiceUserDeleteRequest(service_user_name=old_identity.principal)
                await api.call("ServiceUserDelete", request)
                return f"deleted service user '{old_identity.principal}' (its only token with it)"
            await api.call("TokenDelete", api_pb2.TokenDeleteRequest(token_id=old.id.reveal()))
            return f"deleted token {old.masked}"
        except ModalCallError as error:
            if error.failure is Failure.NOT_FOUND:
                return "nothing to delete: Modal no longer has it"
            raise

    return run_modal("revoke the old Modal token", operation, secrets=old.values())


def find_modal_token(token_id: str) -> str | None:
    """Which member or service user still holds `token_id` (TokensList, ServiceUserList)."""
    from infra.modal_hook.client import ModalApi, run_modal

    async def operation(api: ModalApi) -> str | None:
        from google.protobuf import empty_pb2

        members = await api.call("TokensList", empty_pb2.Empty())
        for token in members.tokens:
            if token.token_id == token_id:
                state = "disabled" if token.disabled else "active"
                return f"{state} member token of '{token.member_displayname}'"
        users = await api.call("ServiceUserList", empty_pb2.Empty())
        for user in users.service_users:
            if user.token_id == token_id:
                return f"token of service user '{user.name}'"
        return None

    return run_modal("list Modal tokens and service users", operation, secrets=[token_id])


def config_holders(
    token_id: str, drivers: Mapping[str, StackDriver], out_notes: list[str]
) -> list[str]:
    """Config keys, in any of `drivers`' stacks, whose value holds `token_id`."""
    holders = []
    for stack, driver in drivers.items():
        try:
            raw = driver.get_config()
        except RentagpuError as error:
            out_notes.append(f"could not read stack '{stack}' config: {error}")
            continue
        holders += [
            f"stack '{stack}' config key {key}"
            for key, value in sorted(raw.items())
            if token_id and token_id in value.value
        ]
    return holders


def _iter_strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (for searching state outputs)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _iter_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _iter_strings(item)


def state_holders(resources: Iterable[StateResource], needle: str) -> list[StateResource]:
    """Resources of a checkpoint whose id or outputs contain `needle`."""
    return [
        r
        for r in resources
        if needle and (needle in r.id or any(needle in text for text in _iter_strings(r.outputs)))
    ]


def _token_from_config(
    raw: Mapping[str, RawValue], id_key: str, secret_key: str
) -> ModalToken | None:
    token_id, secret = raw.get(id_key), raw.get(secret_key)
    if token_id is None or secret is None or not token_id.value or not secret.value:
        return None
    return ModalToken(SecretStr(token_id.value), SecretStr(secret.value))


@dataclass(frozen=True)
class NewTokenSource:
    create_service_user: str | None = None
    read_from: str | None = None  # "stdin" or "env"


def rotate_modal_token(
    driver: StackDriver,
    slot: TokenSlot,
    source: NewTokenSource | None,
    *,
    revoke_old: bool,
    peers: Mapping[str, StackDriver],
    out: TextIO,
    stdin: TextIO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Rotate one Modal token of a stack (see the module docstring); `source=None` resumes."""
    environ = os.environ if environ is None else environ
    stack = driver.stack
    steps = Steps(out, 7)
    raw = driver.get_config()
    environment = config_value(raw, "environment", stack) or stack
    previous = _token_from_config(raw, slot.previous_id_key, slot.previous_secret_key)
    current = _token_from_config(raw, slot.id_key, slot.secret_key)
    resume_hint = f"python -m infra rotate {slot.credential} --stack {stack} --resume"

    if source is None:
        if previous is None:
            raise RotationError(
                f"nothing to resume: stack '{stack}' has no rotation of {slot.credential} in "
                f"progress ({slot.previous_id_key} is not set)"
            )
        if current is None:
            raise RotationError(f"stack '{stack}' config lacks {slot.id_key}/{slot.secret_key}")
        old, new = previous, current
        steps.step(f"Resume the rotation of {slot.credential} in stack '{stack}'")
        old_identity = identify_token(old, "old token")
        steps.say(f"old token {old.masked}: " + _who(old_identity))
        steps.step("New token: already in the stack config")
        new_identity = identify_token(new, "new token")
        steps.step("Check the new token")
        if new_identity is None:
            raise RotationError(
                f"Modal rejects the new token {new.masked} now in stack '{stack}' config; the old "
                f"token {old.masked} was not revoked. Rotate again with a fresh token."
            )
        steps.say(f"accepted: {new_identity.describe()}")
        steps.step("Config already switched; old token kept under " + slot.previous_id_key)
    else:
        if previous is not None:
            raise RotationError(
                f"a rotation of {slot.credential} in stack '{stack}' is already in progress (its "
                f"old token is kept in {slot.previous_id_key}); finish it first: {resume_hint} "
                "--revoke-old"
            )
        steps.step(f"Read the current {slot.credential} of stack '{stack}'")
        if current is None:
            raise RotationError(
                f"stack '{stack}' has no {slot.id_key}/{slot.secret_key} to rotate; set one with "
                f"`pulumi config set --secret --stack {stack} {slot.id_key}` (value on stdin)"
            )
        old = current
        old_identity = identify_token(old, "current token")
        steps.say(f"current token {old.masked}: " + _who(old_identity))

        steps.step("Obtain the new token")
        new = _obtain_token(source, stdin, environ, steps)

        steps.step("Check the new token")
        new_identity = identify_token(new, "new token")
        problems = _new_token_problems(old, old_identity, new, new_identity)
        if problems:
            raise RotationError(
                "the new token was not used, nothing changed: " + "; ".join(problems)
            )
        assert new_identity is not None
        steps.say(f"accepted: {new_identity.describe()}")

        steps.step("Keep the old token in the encrypted config, switch the stack to the new one")
        driver.set_config(slot.previous_id_key, old.id.reveal(), secret=True)
        driver.set_config(slot.previous_secret_key, old.secret.reveal(), secret=True)
        for change in _update_roles(driver, raw, slot, old_identity, new_identity):
            steps.say(change)
        driver.set_config(slot.id_key, new.id.reveal(), secret=True)
        driver.set_config(slot.secret_key, new.secret.reveal(), secret=True)
        steps.say(f"{slot.id_key}/{slot.secret_key} now hold {new.masked}")

    github = ", ".join(slot.github_secrets(environment))
    steps.step(f"pulumi up: replace the GitHub {slot.github_scope} secrets {github}")
    try:
        driver.up()
    except StackUpError as error:
        still = identify_token(old, "old token")
        state = "still works" if still is not None else "is REJECTED by Modal (was it revoked?)"
        raise RotationError(
            f"{error}\nNothing was revoked: the old token {old.masked} {state}, so CI keeps "
            "working with whichever token GitHub holds. The stack config already holds the new "
            f"token; fix the cause, then run: {resume_hint}"
        ) from None

    steps.step("Check both tokens: new in use, old still valid until revoked")
    if not reaches_environment(new, environment):
        raise RotationError(
            f"the new token {new.masked} cannot reach Modal environment '{environment}' (role "
            f"missing?); the old token {old.masked} was not revoked. Check modalServiceUserRoles "
            f"and run: {resume_hint}"
        )
    old_works = identify_token(old, "old token") is not None
    steps.say(f"new token {new.masked} reaches environment '{environment}'")
    steps.say(f"old token {old.masked} " + ("still works" if old_works else "is already rejected"))

    steps.step("Revoke the old token")
    if not revoke_old:
        steps.say(_revoke_instructions(old, old_identity, slot, stack, resume_hint))
        return
    notes: list[str] = []
    holders = config_holders(old.id.reveal(), {stack: driver, **peers}, notes)
    holders = [h for h in holders if slot.previous_id_key not in h]
    for note in notes:
        steps.say(f"note: {note}")
    if holders:
        raise RotationError(
            f"not revoking {old.masked}: it is still configured in " + "; ".join(holders) + ". "
            f"Rotate those first (python -m infra rotate {slot.credential} --stack OTHER ...), "
            f"then run: {resume_hint} --revoke-old"
        )
    steps.say(revoke_modal_token(old, old_identity, new_identity))
    if identify_token(old, "old token") is not None:
        raise RotationError(
            f"Modal still accepts the old token {old.masked} after revoking it; revoke it in the "
            "Modal dashboard (Settings > Tokens / Service users) and run again"
        )
    steps.say(f"Modal now rejects the old token {old.masked}")
    driver.remove_config(slot.previous_id_key)
    driver.remove_config(slot.previous_secret_key)
    steps.say(f"removed the kept copy ({slot.previous_id_key}) from the stack config")
    steps.say(
        "done. Check: python -m infra incident --stack "
        f"{stack} --credential {slot.credential} --verify (old id on stdin)"
    )


def _who(identity: TokenIdentity | None) -> str:
    return identity.describe() if identity else "Modal REJECTS it (treat this as an incident)"


def _obtain_token(
    source: NewTokenSource, stdin: TextIO, environ: Mapping[str, str], steps: Steps
) -> ModalToken:
    if source.create_service_user:
        token = create_service_user(source.create_service_user)
        steps.say(f"created service user '{source.create_service_user}': token {token.masked}")
        return token
    token_id, secret = read_credential(
        source.read_from or "stdin",
        id_variable=NEW_TOKEN_ID_VARIABLE,
        secret_variable=NEW_TOKEN_SECRET_VARIABLE,
        stdin=stdin,
        environ=environ,
        prompt="new Modal token",
    )
    if secret is None:
        raise RotationError("the new token's secret is missing (expected the id and the secret)")
    token = ModalToken(token_id, secret)
    steps.say(f"read token {token.masked} from {source.read_from}")
    return token


def _new_token_problems(
    old: ModalToken,
    old_identity: TokenIdentity | None,
    new: ModalToken,
    new_identity: TokenIdentity | None,
) -> list[str]:
    if new.id.reveal() == old.id.reveal():
        return ["it is the current token"]
    if new_identity is None:
        return [f"Modal rejects the new token {new.masked}"]
    if old_identity is not None and new_identity.workspace_id != old_identity.workspace_id:
        return [
            f"the new token belongs to workspace '{new_identity.workspace_name}', the current "
            f"one to '{old_identity.workspace_name}'"
        ]
    return []


def _update_roles(
    driver: StackDriver,
    raw: Mapping[str, RawValue],
    slot: TokenSlot,
    old_identity: TokenIdentity | None,
    new_identity: TokenIdentity,
) -> list[str]:
    """Give a new service user the old one's role; stop managing the old one (it keeps its role
    in Modal until it is revoked, because the hook never touches users left out of the config)."""
    roles = service_user_roles(raw)
    changes = []
    old_user = (
        old_identity.principal if old_identity and old_identity.kind == "service_user" else None
    )
    if new_identity.kind == "service_user" and new_identity.principal not in roles:
        role = roles.get(old_user or "", slot.default_role)
        driver.set_config(role_key(new_identity.principal), role, secret=False, path=True)
        changes.append(f"modalServiceUserRoles: {new_identity.principal} = {role}")
    if old_user and old_user in roles and old_user != new_identity.principal:
        driver.remove_config(role_key(old_user), path=True)
        changes.append(
            f"modalServiceUserRoles: {old_user} removed (keeps its Modal role until revoked)"
        )
    return changes


def _revoke_instructions(
    old: ModalToken,
    identity: TokenIdentity | None,
    slot: TokenSlot,
    stack: str,
    resume_hint: str,
) -> str:
    if identity is not None and identity.kind == "service_user":
        manual = (
            f"`modal workspace service-users delete {identity.principal}` (a service user has "
            "exactly one token; check no other stack uses it)"
        )
    else:
        manual = (
            f"`modal workspace member-tokens delete <the id ending {old.id.reveal()[-4:]}>` or the "
            "Modal dashboard, Settings > Tokens"
        )
    return (
        f"NOT revoked yet: the old token {old.masked} ({_who(identity)}) still works.\n"
        f"Once CI has deployed with the new token, revoke it with: {resume_hint} --revoke-old\n"
        f"(or by hand: {manual}, then `pulumi config rm --stack {stack} {slot.previous_id_key}` "
        f"and `{slot.previous_secret_key}`)"
    )


# ---------------------------------------------------------------------------------------------
# AWS access keys
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsKey:
    id: SecretStr = field(repr=False)
    secret: SecretStr | None = field(repr=False)

    @property
    def masked(self) -> str:
        return mask(self.id.reveal())


class AwsAccess:
    """boto3 clients: the operator's (default credential chain) or a given key's; the endpoint
    comes from AWS_ENDPOINT_URL, so the same code runs against moto."""

    AUTH_FAILURES = frozenset(
        {"InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"}
    )

    def __init__(self, region: str, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.region = region
        self.endpoint_url = env.get(ENDPOINT_VARIABLE) or None
        self._clients: dict[tuple[str, str], Any] = {}  # building a client loads its model: ~0.3 s

    def client(self, service: str, key: AwsKey | None = None) -> Any:
        cache_key = (service, key.id.reveal() if key else "")
        if cache_key not in self._clients:
            self._clients[cache_key] = self._new_client(service, key)
        return self._clients[cache_key]

    def _new_client(self, service: str, key: AwsKey | None) -> Any:
        import boto3
        from botocore.config import Config

        credentials = {}
        if key is not None:
            credentials = {
                "aws_access_key_id": key.id.reveal(),
                "aws_secret_access_key": key.secret.reveal() if key.secret else "",
            }
        session = boto3.session.Session(region_name=self.region, **credentials)
        config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
        return session.client(service, endpoint_url=self.endpoint_url, config=config)

    def access_key_ids(self, user_name: str) -> list[str]:
        """Ids of the user's access keys, with the operator's credentials."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            listed = self.client("iam").list_access_keys(UserName=user_name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "?")
            if code == "NoSuchEntity":
                return []
            raise RotationError(
                f"AWS refused iam:ListAccessKeys on user '{user_name}' ({code}); run with "
                "credentials that may read the runtime user (the stack's deploy role)"
            ) from None
        except BotoCoreError as error:
            raise RotationError(f"could not reach AWS IAM ({type(error).__name__})") from None
        return [k["AccessKeyId"] for k in listed.get("AccessKeyMetadata", [])]

    def key_check(self, key: AwsKey, bucket: str, prefix: str) -> str:
        """ "works", "rejected" (AWS does not know the key) or "failed: CODE", by a
        ListObjectsV2 on the input prefix, the call the app makes first."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client("s3", key).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "?")
            return "rejected" if code in self.AUTH_FAILURES else f"failed: {code}"
        except BotoCoreError as error:
            return f"failed: {type(error).__name__}"
        return "works"


@dataclass(frozen=True)
class _StackKeys:
    current_name: str
    current: AwsKey | None
    others: dict[str, AwsKey]
    modal_secret_key_id: str | None


def _stack_keys(resources: list[StateResource], environment: str, serial: int) -> _StackKeys:
    prefix = f"{environment}-runtime-key-"
    current_name = f"{prefix}{serial}"
    current, others, secret_key_id = None, {}, None
    for resource in resources:
        if resource.type == ACCESS_KEY_TYPE and resource.name.startswith(prefix):
            secret = resource.outputs.get("secret")
            key = AwsKey(SecretStr(resource.id), SecretStr(secret) if secret else None)
            if resource.name == current_name:
                current = key
            else:
                others[resource.name] = key
        elif resource.type == MODAL_SECRET_TYPE:
            values = resource.outputs.get("values") or {}
            secret_key_id = values.get("AWS_ACCESS_KEY_ID") if isinstance(values, dict) else None
    return _StackKeys(current_name, current, others, secret_key_id)


def rotate_aws_key(
    driver: StackDriver,
    *,
    resume: bool,
    out: TextIO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Rotate the runtime access key of an access-key-mode stack (see the module docstring)."""
    from infra.config import parse_config

    stack = driver.stack
    steps = Steps(out, 5)
    resume_hint = f"python -m infra rotate aws-key --stack {stack} --resume"
    steps.step(f"Check that stack '{stack}' runs with an access key")
    cfg = parse_config(stack, driver.get_config())
    env, aws_cfg = cfg.environment, cfg.aws
    if aws_cfg.auth_mode != "access-key":
        raise RotationError(
            f"stack '{stack}' uses awsAuth=oidc: the app assumes its role with Modal's identity "
            "token, so there is no long-lived key to rotate"
        )
    user = names.runtime_user_name(env)
    aws = AwsAccess(aws_cfg.region, environ)
    steps.say(f"runtime user '{user}', accessKeySerial {aws_cfg.access_key_serial}")

    steps.step("Find the key in use")
    before = _stack_keys(driver.state_resources(), env, aws_cfg.access_key_serial)
    live = aws.access_key_ids(user)
    steps.say(f"AWS holds {len(live)} key(s) for '{user}': " + ", ".join(map(mask, live)))
    if resume:
        old_keys = dict(before.others)
        if not old_keys and before.current is None:
            raise RotationError(f"stack '{stack}' state holds no runtime key; run `pulumi up`")
    else:
        if before.others:
            listed = ", ".join(sorted(before.others))
            raise RotationError(
                f"a previous rotation did not finish: the state still holds {listed} next to "
                f"{before.current_name}. Finish it first: {resume_hint}"
            )
        if before.current is None:
            raise RotationError(
                f"stack '{stack}' state has no {before.current_name}; run `pulumi up` first"
            )
        old_keys = {before.current_name: before.current}
    for name, key in old_keys.items():
        steps.say(f"old key {key.masked} ({name})")

    if resume:
        steps.step(f"Resume: accessKeySerial stays {aws_cfg.access_key_serial}")
        serial = aws_cfg.access_key_serial
    else:
        serial = aws_cfg.access_key_serial + 1
        steps.step(f"Bump accessKeySerial {aws_cfg.access_key_serial} -> {serial}")
        driver.set_config(f"{PROJECT}:accessKeySerial", str(serial), secret=False)

    steps.step(
        "pulumi up: create the new key, write it into the Modal secret, smoke-test, "
        "and only then delete the old key"
    )
    try:
        driver.up()
    except StackUpError as error:
        lines = [str(error), "The old key was not deleted:"]
        try:
            still_live = set(aws.access_key_ids(user))
        except RentagpuError as check_error:
            lines.append(f"  (could not list the keys in AWS to confirm: {check_error})")
            still_live = {key.id.reveal() for key in old_keys.values()}
        for name, key in old_keys.items():
            exists = key.id.reveal() in still_live
            check = (
                aws.key_check(key, aws_cfg.bucket, aws_cfg.input_prefix)
                if exists and key.secret
                else "not checked"
            )
            lines.append(
                f"  {key.masked} ({name}): "
                + ("exists in AWS" if exists else "MISSING in AWS")
                + f", ListObjectsV2 with it: {check}"
            )
        lines.append(
            "The Modal secret keeps the key Pulumi last wrote. Fix the cause, then finish with: "
            f"{resume_hint} (do not bump the serial again)"
        )
        raise RotationError("\n".join(lines)) from None

    steps.step("Verify in AWS: only the new key exists, it works, the old one is refused")
    after = _stack_keys(driver.state_resources(), env, serial)
    problems = []
    new = after.current
    if new is None:
        raise RotationError(f"the state has no {after.current_name} after the update")
    live = aws.access_key_ids(user)
    if live != [new.id.reveal()]:
        problems.append(
            f"AWS holds {', '.join(map(mask, live)) or 'no key'} for '{user}', expected only "
            f"{new.masked}"
        )
    result = aws.key_check(new, aws_cfg.bucket, aws_cfg.input_prefix)
    if result != "works":
        problems.append(
            f"ListObjectsV2 on s3://{aws_cfg.bucket}/{aws_cfg.input_prefix} with {new.masked}: "
            f"{result}"
        )
    for name, key in old_keys.items():
        if key.secret is not None:
            check = aws.key_check(key, aws_cfg.bucket, aws_cfg.input_prefix)
            if check != "rejected":
                problems.append(f"old key {key.masked} ({name}): {check}, expected rejected")
    if after.others:
        problems.append("the state still holds " + ", ".join(sorted(after.others)))
    if after.modal_secret_key_id != new.id.reveal():
        problems.append(
            f"the Modal secret '{names.RUNTIME_SECRET_NAME}' was not last written with {new.masked}"
        )
    if problems:
        raise RotationError(
            "the update finished but the checks failed:\n  - " + "\n  - ".join(problems)
        )
    steps.say(f"AWS holds only {new.masked}; ListObjectsV2 with it works")
    steps.say("old key(s) refused: " + ", ".join(k.masked for k in old_keys.values()))
    steps.say(f"Modal secret '{names.RUNTIME_SECRET_NAME}' in '{env}' carries {new.masked}")


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rotate",
        help="rotate a Modal token or the runtime AWS key of a stack, step by step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="credential", required=True)
    for credential in TOKEN_SLOTS:
        token = kinds.add_parser(credential, help=f"rotate the stack's {credential}")
        token.add_argument("--stack", required=True, choices=ENVIRONMENTS)
        source = token.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--create-service-user",
            metavar="NAME",
            help="create a new Modal service user for the token (needs a manager's MODAL_TOKEN_*)",
        )
        source.add_argument(
            "--new-token-from",
            choices=("stdin", "env"),
            help=f"read the new token from stdin or {NEW_TOKEN_ID_VARIABLE}/_SECRET",
        )
        source.add_argument(
            "--resume", action="store_true", help="continue a rotation that stopped"
        )
        token.add_argument(
            "--revoke-old",
            action="store_true",
            help="revoke the old token in Modal and check it is refused",
        )
        token.set_defaults(func=command)
    key = kinds.add_parser("aws-key", help="rotate the runtime IAM user's access key")
    key.add_argument("--stack", required=True, choices=ENVIRONMENTS)
    key.add_argument("--resume", action="store_true", help="finish a rotation whose up failed")
    key.set_defaults(func=command)


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
    driver = make(args.stack)
    if args.credential == "aws-key":
        rotate_aws_key(driver, resume=args.resume, out=out, environ=environ)
        return 0
    source = None
    if not args.resume:
        source = NewTokenSource(args.create_service_user, args.new_token_from)
    rotate_modal_token(
        driver,
        TOKEN_SLOTS[args.credential],
        source,
        revoke_old=args.revoke_old,
        peers=other_stack_drivers(args.stack, make),
        out=out,
        stdin=stdin or sys.stdin,
        environ=environ,
    )
    return 0
