"""Modal's audit log, as the audit reads it: which actions matter, and what each entry means here.

Entries come from `AuditLogList` (modal 1.6.4, `modal_proto/api_pb2.pyi` 3468-3530), newest
first, paged with `next_cursor` exactly as the SDK's internal reader does
(`modal/_audit_logs/list.py:27-50`). Only entries in the stack's Modal environment count
(`context.environment_name`, or its id when the name is unresolved). An entry by the stack's CI
service user (a `contributor` in `modalServiceUserRoles`) is CI doing its job; anything else that
changes a secret, an app or a role is a finding, and an action this module does not know is one
too, at a lower severity: it is reported, never assumed harmless.
"""

from __future__ import annotations

import datetime
import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from infra.core.config import expected_service_users
from infra.tools.audit.findings import Activity, AuditScope, Finding, Severity, SourceResult, day

SYSTEM = "modal"


class Known(enum.Enum):
    CONFIRMED = "named in Modal's audit-log guide"
    ASSUMED = "assumed from the guide's `<noun>.<verb>` pattern; not yet seen in a real log"


# The actions that change what runs in an environment or who may change it. Modal 1.6.4's SDK and
# protocol do not enumerate actions (`AuditLogEntry.action` is a free string, pyi 3426).
# Confirmed from https://modal.com/docs/guide/audit-logs: `secret.create`, `app.deploy`. The rest
# are ASSUMED names; an assumed name that is wrong costs nothing, because any other action under
# the same noun (`secret.*`, `app.*`, `environment.*`, `service_user.*`, `token.*`) is treated as
# sensitive too, and any other action at all is reported as unknown.
SENSITIVE_ACTIONS: dict[str, Known] = {
    "secret.create": Known.CONFIRMED,
    "secret.update": Known.ASSUMED,
    "secret.delete": Known.ASSUMED,
    "app.deploy": Known.CONFIRMED,
    "app.rollback": Known.ASSUMED,
    "app.stop": Known.ASSUMED,
    "app.delete": Known.ASSUMED,
    "environment.update": Known.ASSUMED,
    "environment.delete": Known.ASSUMED,
    "environment.set_role": Known.ASSUMED,
    "service_user.create": Known.ASSUMED,
    "service_user.delete": Known.ASSUMED,
    "token.create": Known.ASSUMED,
}
SENSITIVE_NOUNS = ("secret", "app", "environment", "service_user", "token")

# Severity of a change by someone other than CI: (in prod, in dev). None: listed as activity only
# (people deploy to dev with their own tokens by design: the guide's personal tokens are for dev).
_SEVERITY: dict[str, tuple[Severity, Severity | None]] = {
    "secret": (Severity.HIGH, Severity.MEDIUM),
    "app": (Severity.HIGH, None),
    "environment": (Severity.HIGH, Severity.MEDIUM),
    "service_user": (Severity.HIGH, Severity.MEDIUM),
    "token": (Severity.MEDIUM, Severity.LOW),
}
_UNKNOWN_SEVERITY = (Severity.MEDIUM, Severity.LOW)


@dataclass(frozen=True)
class LogEntry:
    """The parts of an `AuditLogEntry` the audit uses (never `metadata_json` or the IP address)."""

    id: str
    action: str
    actor_type: str
    actor_name: str
    environment: str
    at: datetime.datetime | None
    source: str
    status: str
    targets: tuple[str, ...]

    @classmethod
    def from_proto(cls, entry, environment_names: dict[str, str]) -> LogEntry:
        context = entry.context
        environment = context.environment_name or environment_names.get(context.environment_id, "")
        try:
            at = datetime.datetime.fromisoformat(entry.event_at) if entry.event_at else None
        except ValueError:
            at = None
        return cls(
            id=entry.id,
            action=entry.action,
            actor_type=entry.actor.type or "unknown",
            actor_name=entry.actor.name or entry.actor.id or "unresolved",
            environment=environment,
            at=at,
            source=context.source or "unknown",
            status=entry.status or "?",
            targets=tuple(f"{t.type} {t.id}" if t.id else t.type for t in entry.targets),
        )

    @property
    def noun(self) -> str:
        return self.action.split(".", 1)[0]

    @property
    def actor(self) -> str:
        return f"{self.actor_type.replace('_', ' ')} '{self.actor_name}'"


def ci_service_users(scope: AuditScope) -> frozenset[str]:
    return frozenset(
        name for name, role in expected_service_users(scope.config).items() if role == "contributor"
    )


def _is_ci(entry: LogEntry, ci: frozenset[str]) -> bool:
    return entry.actor_type == "service_user" and entry.actor_name in ci


def _command(scope: AuditScope, noun: str, action: str) -> str:
    env, stack = scope.environment, scope.stack
    if noun == "secret":
        return f"pulumi refresh --stack {stack} --preview-only --expect-no-changes"
    if noun == "app":
        return f"modal app history {scope.config.modal.app_name} -e {env}"
    if noun == "environment":
        return f"modal environment roles list {env}"
    if noun in ("service_user", "token"):
        return "modal workspace service-users list; modal workspace member-tokens list"
    return f"search Modal's audit log for `action:{action}` (workspace settings, Audit logs)"


def findings_from_log(scope: AuditScope, entries: Iterable[LogEntry]) -> SourceResult:
    """Group the stack's entries by (action, actor): one finding or activity line per group."""
    result = SourceResult()
    ci = ci_service_users(scope)
    prod = scope.config.is_prod
    groups: dict[tuple[str, str], list[LogEntry]] = defaultdict(list)
    ci_actions: dict[str, int] = defaultdict(int)
    for entry in entries:
        if entry.environment != scope.environment:
            continue
        if _is_ci(entry, ci):
            ci_actions[entry.action] += 1
            continue
        groups[(entry.action, entry.actor)].append(entry)
    for (action, actor), group in sorted(groups.items()):
        noun = group[0].noun
        sensitive = action in SENSITIVE_ACTIONS or noun in SENSITIVE_NOUNS
        high, low = _SEVERITY.get(noun, _UNKNOWN_SEVERITY) if sensitive else _UNKNOWN_SEVERITY
        severity = high if prod else low
        summary = _summary(action, actor, group)
        if severity is None:
            result.activity.append(Activity(SYSTEM, summary))
            continue
        known = SENSITIVE_ACTIONS.get(action)
        note = "" if known is not None or not sensitive else "; not a known action name"
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-change-by-other-actor" if sensitive else "modal-unknown-action",
                severity,
                f"`{action}` by {actor} in `{scope.environment}`",
                f"{summary}; only CI ({_names(ci)}) should change the environment{note}",
                _command(scope, noun, action),
            )
        )
    if ci_actions:
        listed = ", ".join(f"`{a}` ×{n}" for a, n in sorted(ci_actions.items()))
        result.activity.append(
            Activity(SYSTEM, f"by CI ({_names(ci)}) in `{scope.environment}`: {listed}")
        )
    return result


def _names(ci: frozenset[str]) -> str:
    return ", ".join(f"'{n}'" for n in sorted(ci)) or "no contributor configured"


def _summary(action: str, actor: str, group: list[LogEntry]) -> str:
    times = len(group)
    dates = sorted(day(e.at) for e in group if e.at is not None)
    when = (
        dates[0]
        if dates and dates[0] == dates[-1]
        else f"{dates[0]} to {dates[-1]}"
        if dates
        else "?"
    )
    failed = sum(e.status != "success" for e in group)
    sources = ", ".join(sorted({e.source for e in group}))
    targets = ", ".join(sorted({t for e in group for t in e.targets})[:5]) or "no target"
    text = f"`{action}` by {actor}: {times} time{'s' if times > 1 else ''} ({when}) via {sources}"
    text += f", on {targets}"
    return text + (f", {failed} failed" if failed else "")
