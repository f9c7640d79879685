"""Pieces every rotation and incident step shares: masking, reading a credential from stdin or
the environment, numbered steps, and finding where a value is still held.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from infra.config import PROJECT, RawValue, SecretStr
from infra.errors import RentagpuError, RotationError

if TYPE_CHECKING:  # annotations only: driver imports redact() from here
    from infra.rotation.driver import StackDriver, StateResource


# ---------------------------------------------------------------------------------------------
# Small shared pieces: masking, reading credentials without argv, the step printer
# ---------------------------------------------------------------------------------------------


def mask(value: str) -> str:
    """A recognisable stand-in for a credential id: its kind prefix and last four characters."""
    if len(value) < 12:
        return "…"
    prefix = value[:3] if value[2] == "-" else value[:4]
    return f"{prefix}…{value[-4:]}"


def redact(text: str, secrets: Iterable[str]) -> str:
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
