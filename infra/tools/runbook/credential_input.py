"""Reading a credential from the operator without it ever reaching argv, a shell history or the
screen: from the environment, a prompt without echo, or piped text in the forms tools print."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TextIO

from infra.core.errors import RotationError
from infra.core.secrets import SecretStr

# Where `rotate modal-token --new-token-from env` reads the new token.
NEW_TOKEN_ID_VARIABLE = "RENTAGPU_NEW_MODAL_TOKEN_ID"
NEW_TOKEN_SECRET_VARIABLE = "RENTAGPU_NEW_MODAL_TOKEN_SECRET"

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
