"""Finding where a credential is still held: in the config of any stack, or in exported state."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from infra.core.config import RawValue, config_value
from infra.core.config_schema import full_key
from infra.core.errors import RentagpuError
from infra.tools.runbook.driver import StackDriver, StateResource


def role_key(user: str) -> str:
    """Config path of one service user's role, in the form `pulumi config set --path` takes."""
    if "." in user:
        return full_key(f'modalServiceUserRoles["{user}"]')
    return full_key(f"modalServiceUserRoles.{user}")


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
