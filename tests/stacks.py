"""Raw stack configs for tests, shaped exactly like `pulumi config` stores them.

Secret values are generated per test session, so a test can search any output for them and a
real-looking credential is never written into the repository.
"""

from __future__ import annotations

import json
import secrets

from infra.core.config import RawValue, StackConfig, parse_config

PLANTED = {
    "rentagpu:modalTokenId": "ak-planted" + secrets.token_hex(10),
    "rentagpu:modalTokenSecret": "as-planted" + secrets.token_hex(10),
}
# The fallback: CI's deploy token supplied in config instead of minted (`stack_config(...,
# **FALLBACK_TOKEN)`), with the planted values, stored as secrets the way `pulumi config set
# --secret` stores them.
FALLBACK_TOKEN = {key.split(":")[1]: RawValue(value, secret=True) for key, value in PLANTED.items()}


def raw_config(stack: str, **overrides: object) -> dict[str, RawValue]:
    """A valid config for `stack`; overrides map short keys ('bucket', 'aws:region') to values.

    An override of None removes the key; a RawValue is taken as is; lists and dicts are JSON.
    """
    values: dict[str, object] = {
        "environment": stack,
        "githubOwner": "acme-ml",
        "githubRepository": "rentagpu",
        "modalWorkspaceId": "ac-acme0workspace1",
        "bucket": f"acme-ml-rentagpu-{stack}",
        "inputPrefix": "jobs/input/",
        "outputPrefix": "jobs/output/",
        "aws:region": "eu-west-1",
    }
    if stack == "prod":
        values |= {
            "reviewers": ["alice", "bob"],
            "reviewerTeams": ["ml-platform"],
            "ownsRepositorySettings": True,
            "ownsAccountSingletons": True,
            "monthlyBudgetDollars": 500,
        }
    raw: dict[str, RawValue] = {}
    for key, value in values.items():
        raw[_full(key)] = _raw(value)
    for key, value in overrides.items():
        if value is None:
            raw.pop(_full(key), None)
        else:
            raw[_full(key)] = value if isinstance(value, RawValue) else _raw(value)
    return raw


def stack_config(stack: str, **overrides: object) -> StackConfig:
    return parse_config(stack, raw_config(stack, **overrides))


def _full(key: str) -> str:
    return key if ":" in key else f"rentagpu:{key}"


def _raw(value: object) -> RawValue:
    if isinstance(value, bool):
        return RawValue("true" if value else "false")
    if isinstance(value, list | dict):
        return RawValue(json.dumps(value))
    return RawValue(str(value))
