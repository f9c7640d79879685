"""What an audit finds, and what it looked at: findings, activity, checks that could not run.

A `Finding` is something a person should act on; it carries a severity and the command that fixes
or investigates it. `Activity` is what happened and looked right (a deployment and who approved
it), listed so a reviewer sees it without being asked to act. `NotChecked` says which part of the
audit could not run and why: an audit with one is incomplete, never clean.

Every text here is built from names, logins, dates and masked ids; no field ever holds a secret.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from infra.core.config import StackConfig

SYSTEMS = ("modal", "github", "aws")


class Severity(enum.IntEnum):
    """How soon to act: high (now, something may be wrong in production), medium (this week),
    low (tidy up)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    system: str  # one of SYSTEMS
    kind: str  # a stable identifier, e.g. "github-deploy-not-main" (see KINDS)
    severity: Severity
    subject: str  # what it is about: "service user 'ci-deployer'", "deployment 42"
    detail: str  # what was seen
    command: str  # the command that fixes it, or that shows more

    def as_dict(self) -> dict[str, str]:
        return {
            "system": self.system,
            "kind": self.kind,
            "severity": self.severity.label,
            "subject": self.subject,
            "detail": self.detail,
            "command": self.command,
        }


@dataclass(frozen=True)
class Activity:
    system: str
    text: str


@dataclass(frozen=True)
class NotChecked:
    system: str
    what: str
    reason: str


@dataclass
class SourceResult:
    """What one finding source reports."""

    findings: list[Finding] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)

    def extend(self, other: SourceResult) -> None:
        self.findings += other.findings
        self.activity += other.activity
        self.not_checked += other.not_checked


@dataclass(frozen=True)
class AuditScope:
    """What is audited: one stack, a window of recent events, and the thresholds."""

    config: StackConfig
    now: datetime.datetime  # timezone-aware UTC
    since_days: int  # events and deployments newer than this many days
    unused_days: int  # a credential unused this long is reported
    skipped: tuple[str, ...] = ()  # systems left out on purpose (--skip)

    @property
    def environment(self) -> str:
        return self.config.environment

    @property
    def stack(self) -> str:
        return self.config.stack

    @property
    def window_start(self) -> datetime.datetime:
        return self.now - datetime.timedelta(days=self.since_days)

    @property
    def rotation_days(self) -> int:
        return self.config.modal.token_rotation_days

    def age_days(self, moment: datetime.datetime) -> int:
        return (self.now - moment).days


# Every kind of finding, with what it means. The README's audit table lists the same kinds.
KINDS = {
    "modal-change-by-other-actor": "a sensitive change in the stack's Modal environment by "
    "someone other than its CI service user",
    "modal-unknown-action": "an audit-log action this tool does not know, by someone other than "
    "the CI service user (reported, not guessed harmless)",
    "modal-service-user-missing": "a service user in `modalServiceUserRoles` does not exist",
    "modal-service-user-role": "a configured service user holds another role than configured",
    "modal-service-user-unexpected": "a service user holds a role in the environment without "
    "being configured",
    "modal-service-user-unscoped": "a service user is not scoped to the environments it is granted",
    "modal-service-user-expired": "a configured service user's token has expired",
    "modal-service-user-expiring": "a configured service user's token expires within 14 days",
    "modal-service-user-due": "a configured service user is older than the rotation period",
    "modal-service-user-unused": "a configured service user is unused",
    "modal-member-token-unused": "a member's token is unused",
    "modal-budget": "the environment's spend cap is missing, mostly spent or reached",
    "github-deploy-not-main": "a deployment from a ref the environment does not admit",
    "github-deploy-unapproved": "a prod deployment without an approval on record",
    "github-secret-due": "an environment secret older than the rotation period",
    "aws-principal-missing": "a role of the stack, or its runtime user, does not exist",
    "aws-role-unused": "a role of the stack is unused",
    "aws-key-too-old": "the runtime user's access key is older than `accessKeyMaxAgeDays`",
    "aws-key-unused": "the runtime user's access key is unused",
    "aws-key-extra": "the runtime user holds more than one access key",
}


@dataclass(frozen=True)
class AuditReport:
    stack: str
    scope: AuditScope
    findings: tuple[Finding, ...]
    activity: tuple[Activity, ...]
    not_checked: tuple[NotChecked, ...]

    @classmethod
    def from_results(cls, scope: AuditScope, results: Iterable[SourceResult]) -> AuditReport:
        merged = SourceResult()
        for result in results:
            merged.extend(result)
        findings = sorted(merged.findings, key=lambda f: (-f.severity, f.system, f.kind))
        return cls(
            scope.stack,
            scope,
            tuple(findings),
            tuple(merged.activity),
            tuple(merged.not_checked),
        )

    @property
    def complete(self) -> bool:
        return not self.not_checked

    def counts(self) -> dict[str, int]:
        return {s.label: sum(f.severity is s for f in self.findings) for s in reversed(Severity)}


def ago(days: int) -> str:
    return "today" if days <= 0 else "1 day ago" if days == 1 else f"{days} days ago"


def day(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d")


def unused_reason(
    scope: AuditScope, last_used: datetime.datetime | None, created: datetime.datetime | None
) -> str | None:
    """Why a credential counts as unused (never used since long after its creation, or not for
    `--unused-days`), or None."""
    if last_used is None:
        if created is not None and scope.age_days(created) > scope.unused_days:
            return f"never used since it was created {ago(scope.age_days(created))}"
        return None
    if scope.age_days(last_used) > scope.unused_days:
        return f"last used {ago(scope.age_days(last_used))} ({day(last_used)})"
    return None


def from_epoch(seconds: float) -> datetime.datetime | None:
    """A Modal `double` timestamp (0 = never) as an aware datetime."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC) if seconds else None
