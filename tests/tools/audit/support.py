"""What the audit tests share: a fixed "now", scopes over the test stacks, dates relative to now."""

from __future__ import annotations

import datetime

from infra.tools.audit.findings import AuditScope, Finding
from tests.stacks import stack_config

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def scope_for(
    stack: str, *, since: int = 7, unused: int = 90, now: datetime.datetime = NOW, **config: object
) -> AuditScope:
    return AuditScope(stack_config(stack, **config), now, since, unused)


def days_ago(days: float, now: datetime.datetime = NOW) -> datetime.datetime:
    return now - datetime.timedelta(days=days)


def iso(days: float, now: datetime.datetime = NOW) -> str:
    """A GitHub timestamp `days` before now."""
    return days_ago(days, now).strftime("%Y-%m-%dT%H:%M:%SZ")


def kinds(findings: list[Finding] | tuple[Finding, ...]) -> list[str]:
    return sorted(f.kind for f in findings)
