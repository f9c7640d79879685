"""Inputs and helpers shared by the Modal hook tests."""

from __future__ import annotations

import secrets as _secrets
from typing import Any

from pulumi.dynamic import ResourceProvider

from infra.modal_hook.client import CallPolicy
from tests.fakes.modal_fixtures import CI_SERVICE_USER

# Short bounds so fault tests finish in seconds; the shape (retries, backoff) is the default's.
FAST = CallPolicy(
    connect_timeout_s=2.0,
    attempt_timeout_s=2.0,
    deadline_s=8.0,
    max_attempts=4,
    backoff_initial_s=0.01,
    backoff_max_s=0.05,
)

SECRET_NAME = "rentagpu-runtime"


def planted(label: str) -> str:
    """A secret value made up at runtime, easy to search for wherever it must not appear."""
    return f"planted-{label}-{_secrets.token_hex(8)}"


def prod_environment(**overrides: Any) -> dict[str, Any]:
    props = {
        "environment_name": "prod",
        "restricted": True,
        "service_user_roles": {CI_SERVICE_USER: "contributor"},
        "allow_deletion": False,
    }
    return {**props, **overrides}


def dev_environment(**overrides: Any) -> dict[str, Any]:
    props = {
        "environment_name": "dev",
        "restricted": False,
        "service_user_roles": {CI_SERVICE_USER: "contributor"},
        "allow_deletion": False,
    }
    return {**props, **overrides}


def runtime_secret(environment: str, values: dict[str, str], **overrides: Any) -> dict[str, Any]:
    props = {
        "environment_name": environment,
        "secret_name": SECRET_NAME,
        "values": values,
        "required_keys": sorted(values),
    }
    return {**props, **overrides}


def checked(provider: ResourceProvider, news: dict[str, Any], olds: dict[str, Any] | None = None):
    """The inputs after the provider's `check`, as Pulumi passes them on; fails on any failure."""
    result = provider.check(olds or {}, news)
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return result.inputs
