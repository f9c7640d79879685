"""How Pulumi marks values on the wire and in state: the secret envelope and the unknown marker.

- A secret travels as `{SECRET_SIG_KEY: SECRET_SIG, "value": V}` (the engine and the SDK's
  mocks), and `pulumi stack export --show-secrets` writes `{SECRET_SIG_KEY: SECRET_SIG,
  "plaintext": "<V as JSON>"}`; without `--show-secrets` only `"ciphertext"` is there.
- A value not known until `up` (during a preview) travels as the string `UNKNOWN`
  (`pulumi.runtime.rpc.UNKNOWN`). The dynamic provider host deserializes `check` and `diff` inputs
  with `keep_unknowns=True`, which turns that string into a `pulumi.output.Unknown()` object
  (pulumi/dynamic/__main__.py Check and Diff; pulumi/runtime/rpc.py deserialize_property), so a
  provider sees the object under the real engine and the string under mocks: `is_unknown` knows
  both.

Repeated here so that reading them needs no `pulumi` import; a test checks they equal the SDK's.
"""

from __future__ import annotations

import json
from typing import Any

from infra.core.secrets import SECRET_MASK

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def is_secret_envelope(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def envelope(value: Any) -> dict[str, Any]:
    """`value` wrapped as the engine marks a secret."""
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def unwrap(value: Any) -> Any:
    """A copy of `value` with every secret envelope replaced by what it holds (None for one that
    is still encrypted: an export made without `--show-secrets`)."""
    if is_secret_envelope(value):
        if "value" in value:
            return unwrap(value["value"])
        if "plaintext" in value:
            return unwrap(json.loads(value["plaintext"]))
        return None
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def mask_secrets(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy of `value` with every secret envelope shown as SECRET_MASK, and the dotted paths
    (`values.KEY`, `reviewers.0`) where they were."""
    paths: list[str] = []

    def walk(item: Any, at: str) -> Any:
        if is_secret_envelope(item):
            paths.append(at)
            return SECRET_MASK
        if isinstance(item, dict):
            return {k: walk(v, f"{at}.{k}" if at else k) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, f"{at}.{i}" if at else str(i)) for i, v in enumerate(item)]
        return item

    return walk(value, path), paths


def is_unknown(value: Any) -> bool:
    """The engine's unknown: the wire string, or the `pulumi.output.Unknown` the provider host
    makes of it (matched by name, so the core needs no pulumi import)."""
    if isinstance(value, str):
        return value == UNKNOWN
    kind = type(value)
    return kind.__name__ == "Unknown" and kind.__module__ == "pulumi.output"


def contains_unknown(value: Any) -> bool:
    """True if `value`, or anything inside it, is not known yet."""
    if is_unknown(value):
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(v) for v in value)
    return False
