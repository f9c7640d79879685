"""Secret values in memory and in text: `SecretStr`, redaction, masked ids.

A secret lives in exactly two places: the stack's encrypted config and the system that uses it. In
between it is held in a `SecretStr`, which never shows itself in a repr, a log or a traceback and
cannot be pickled into state; text that might contain one (a server's error message, a command's
stderr) goes through `redact`; an id a user must recognise is shown as `mask_id` gives it.
"""

from __future__ import annotations

from collections.abc import Iterable

# What a secret value is shown as, everywhere: plans, reports, errors, logs.
SECRET_MASK = "[secret]"

# Shorter values are not redacted: replacing "v" or "dev" would garble every message, and no
# credential is that short.
MIN_REDACTED_LENGTH = 4


class SecretStr:
    """A secret string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('[secret]')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # pickling a config must not be a way to smuggle a secret into state
        raise TypeError("SecretStr cannot be pickled")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in `text` by SECRET_MASK, longest first so none leaks in part."""
    values = {s for s in secrets if len(s) >= MIN_REDACTED_LENGTH}
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, SECRET_MASK)
    return text


def mask_id(value: str) -> str:
    """A recognisable stand-in for a credential id: its kind prefix and last four characters
    (`ak-…1a2b`, `AKIA…WXYZ`); nothing at all for a value too short to show safely."""
    if len(value) < 12:
        return "…"
    prefix = value[:3] if value[2] == "-" else value[:4]
    return f"{prefix}…{value[-4:]}"


def seal(public_key: str, value: SecretStr) -> str:
    """`value` encrypted for GitHub: a libsodium sealed box to the base64 `public_key` of a
    repository or environment, base64 encoded, which is the `encrypted_value` GitHub's secrets API
    takes (docs.github.com, "Encrypting secrets for the REST API", the Python example). Only GitHub,
    which holds the private key, can open it; each call gives a different ciphertext."""
    import base64

    from nacl.public import PublicKey, SealedBox

    try:
        key = PublicKey(base64.b64decode(public_key, validate=True))
    except (ValueError, TypeError) as error:
        raise ValueError("not a base64 X25519 public key (32 bytes)") from error
    return base64.b64encode(SealedBox(key).encrypt(value.reveal().encode())).decode()
