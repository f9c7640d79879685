"""Pure checks of the hook's inputs, run by the providers' `check` before anything is sent to Modal.

Each function returns `(property, reason)` pairs, empty when the value is fine. Reasons name keys
and allowed forms only, never a secret value. Values Pulumi does not know yet (during a preview)
are skipped: they are checked again, known, before `create` or `update` runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from infra.core.config_schema import MAX_BUDGET_DOLLARS, MIN_BUDGET_DOLLARS, modal_user
from infra.core.config_schema import MODAL_ROLES as ROLES
from infra.core.wire import is_unknown

_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_OBJECT_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_APP_ID = re.compile(r"^ap-[A-Za-z0-9]{22}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GPU = re.compile(r"^[A-Za-z0-9-]+(?::[1-8])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Problems = list[tuple[str, str]]


def environment_name(prop: str, value: Any) -> Problems:
    if is_unknown(value):
        return []
    if not isinstance(value, str) or not _ENVIRONMENT_NAME.fullmatch(value):
        return [
            (
                prop,
                "must be a Modal environment name: 1-64 letters, digits, '-' or '_', "
                "starting with a letter or digit",
            )
        ]
    if value.lower().startswith("en-"):
        return [(prop, "must not start with 'en-' (Modal reserves it for environment ids)")]
    return []


def object_name(prop: str, value: Any, kind: str) -> Problems:
    if is_unknown(value):
        return []
    if not isinstance(value, str) or not _OBJECT_NAME.fullmatch(value) or _APP_ID.match(value):
        return [(prop, f"must be a Modal {kind} name: 1-64 letters, digits, '.', '-' or '_'")]
    return []


def boolean(prop: str, value: Any) -> Problems:
    if is_unknown(value) or isinstance(value, bool):
        return []
    return [(prop, "must be true or false")]


def service_user_roles(prop: str, value: Any) -> Problems:
    if is_unknown(value):
        return []
    if not isinstance(value, Mapping):
        return [(prop, "must map service user names to a role (contributor, viewer, no-access)")]
    problems: Problems = []
    for name, role in value.items():
        if not isinstance(name, str) or modal_user(name) is not None:
            problems.append((f"{prop}.{name}", "is not a Modal service user name"))
        if not is_unknown(role) and role not in ROLES:
            problems.append((f"{prop}.{name}", f"must be one of: {', '.join(ROLES)}"))
    return problems


def secret_values(prop: str, value: Any, required_keys: Any) -> Problems:
    """Keys must be environment variable names, values strings, and every required key present.

    Only key names appear in the reasons: the values are secrets.
    """
    if is_unknown(value):
        return []
    if not isinstance(value, Mapping):
        return [(prop, "must map environment variable names to string values")]
    problems: Problems = []
    if not value:
        problems.append((prop, "is empty; a Modal secret needs at least one key"))
    for key, item in value.items():
        if not isinstance(key, str) or not _ENV_VAR.fullmatch(key):
            problems.append(
                (
                    prop,
                    f"key {key!r} is not an environment variable name "
                    "(letters, digits, '_', not starting with a digit)",
                )
            )
        elif not is_unknown(item) and not isinstance(item, str):
            problems.append((prop, f"the value of {key} must be a string"))
    if isinstance(required_keys, list | tuple):
        missing = sorted(k for k in required_keys if isinstance(k, str) and k not in value)
        if missing:
            problems.append(
                (
                    prop,
                    f"is missing the required key(s) {', '.join(missing)}; "
                    "set them in the stack's secure config or the outputs wired into it",
                )
            )
    return problems


def required_keys(prop: str, value: Any) -> Problems:
    if is_unknown(value):
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(k, str) for k in value):
        return [(prop, "must be a list of key names")]
    return [
        (prop, f"{k!r} is not an environment variable name")
        for k in value
        if not _ENV_VAR.fullmatch(k)
    ]


def gpus(prop: str, value: Any) -> Problems:
    if is_unknown(value):
        return []
    if not isinstance(value, list | tuple) or not value:
        return [(prop, "must list at least one GPU type, first choice first")]
    bad = [g for g in value if not is_unknown(g) and not (isinstance(g, str) and _GPU.fullmatch(g))]
    if bad:
        return [(prop, f"{bad!r}: each must be a Modal GPU type such as 'H100' or 'A100-80GB:2'")]
    return []


def choice(prop: str, value: Any, choices: tuple[str, ...]) -> Problems:
    if is_unknown(value) or value in choices:
        return []
    return [(prop, f"must be one of: {', '.join(choices)}")]


def sha256_digest(prop: str, value: Any) -> Problems:
    # The message never quotes the value: a fingerprint is derived from secrets.
    if is_unknown(value) or (isinstance(value, str) and _SHA256.fullmatch(value)):
        return []
    return [(prop, "must be a sha256 hex digest (64 lowercase hex characters)")]


def text(prop: str, value: Any) -> Problems:
    if is_unknown(value) or (isinstance(value, str) and value):
        return []
    return [(prop, "must be a non-empty string")]


def budget_dollars(prop: str, value: Any) -> Problems:
    """A spend cap: a number of dollars in the range the config key allows."""
    if is_unknown(value):
        return []
    low, high = MIN_BUDGET_DOLLARS, MAX_BUDGET_DOLLARS
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        return [(prop, f"must be a number of dollars, {low}-{high:,}")]
    return []


def whole_number(prop: str, value: Any, low: int, high: int) -> Problems:
    """A count; numbers cross the engine's wire as doubles, so 90.0 is 90."""
    if is_unknown(value):
        return []
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not low <= value <= high:
        return [(prop, f"must be a whole number, {low}-{high}")]
    return []
