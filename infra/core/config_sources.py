"""Where raw stack config comes from outside the engine: a stack file, or `pulumi config --json`.

Both give `RawValue`s keyed by full key (`rentagpu:bucket`), secret flags kept, ready for
`parse_config`. (Under the engine, the program reads its config through the SDK instead:
`infra.program.raw_config_from_engine`.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.core.config import RawValue
from infra.core.config_schema import full_key
from infra.core.errors import ConfigError

# What a `secure:` value of a stack file reads as offline: set, but not decryptable here.
ENCRYPTED = "<encrypted>"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def config_from_stack_file(path: Path) -> dict[str, RawValue]:
    """Read a Pulumi stack file; `secure:` values become masked placeholders, flagged secret."""
    import yaml

    if not path.is_file():
        raise ConfigError(path.stem.removeprefix("Pulumi."), [f"{path.name}: no such stack file"])
    document = yaml.safe_load(path.read_text()) or {}
    raw: dict[str, RawValue] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raw[full_key(key)] = RawValue(ENCRYPTED, secret=True)
        else:
            raw[full_key(key)] = RawValue(_as_text(value), secret=False)
    return raw


def config_from_json(text: str, stack: str = "?") -> dict[str, RawValue]:
    """Read `pulumi config --json --show-secrets` output: {key: {value, secret, objectValue?}}."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConfigError(stack, [f"--config-json: not JSON ({error.msg})"]) from None
    if not isinstance(document, dict):
        raise ConfigError(
            stack, ["--config-json: expected the object `pulumi config --json` prints"]
        )
    raw: dict[str, RawValue] = {}
    for key, entry in document.items():
        if not isinstance(entry, dict) or "value" not in entry and "objectValue" not in entry:
            raise ConfigError(
                stack, [f"--config-json: {key}: expected {{'value': ..., 'secret': ...}}"]
            )
        value = entry.get("objectValue", entry.get("value"))
        raw[full_key(key)] = RawValue(_as_text(value), secret=bool(entry.get("secret", False)))
    return raw
