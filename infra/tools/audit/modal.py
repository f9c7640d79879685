"""The audit's Modal part: one connection, read-only RPCs only, each part reported on its own.

Calls: `EnvironmentList` (the environment's id, for log entries whose name is unresolved),
`AuditLogSettingsGet` and `AuditLogList` (paged), `ServiceUserList`, `TokensList`,
`EnvironmentGetBudget` (the spend cap, judged by `infra.modal_hook.budget.budget_finding`). The token is
MODAL_TOKEN_ID/MODAL_TOKEN_SECRET, read by `run_modal` (in CI: the stack's read-only token). A part
Modal refuses (a token that may not read the audit log or list service users) is reported as not
checked, with Modal's reason, and the other parts still run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.core.errors import Failure, ModalCallError
from infra.modal_hook.budget import BudgetStatus, budget_finding, live_budget
from infra.modal_hook.client import CallPolicy, ModalApi, run_modal
from infra.tools.audit.findings import (
    Activity,
    AuditScope,
    Finding,
    NotChecked,
    Severity,
    SourceResult,
)
from infra.tools.audit.modal_log import LogEntry, findings_from_log
from infra.tools.audit.modal_users import member_token_findings, service_user_findings

SYSTEM = "modal"
# Reading a busy log takes many pages; each call is still bounded by the policy's attempt timeout.
AUDIT_POLICY = CallPolicy(deadline_s=180.0)
MAX_LOG_PAGES = 400


@dataclass
class _Read:
    environment_id: str = ""
    entries: list[LogEntry] | None = None
    users: list[Any] | None = None
    tokens: list[Any] | None = None
    budget: list[BudgetStatus | None] | None = None  # [status], or [None] when the env is gone
    refused: list[NotChecked] = field(default_factory=list)


async def _log(api: ModalApi, scope: AuditScope, names: dict[str, str]) -> list[LogEntry]:
    from modal_proto import api_pb2

    settings = await api.call("AuditLogSettingsGet", api_pb2.AuditLogSettingsGetRequest())
    request = api_pb2.AuditLogListRequest(
        oldest_ms=int(scope.window_start.timestamp() * 1000),
        newest_ms=int(scope.now.timestamp() * 1000),
        limit=settings.page_size,
    )
    entries: list[LogEntry] = []
    for _ in range(MAX_LOG_PAGES):
        reply = await api.call("AuditLogList", request)
        entries += [LogEntry.from_proto(item, names) for item in reply.items]
        if not reply.HasField("next_cursor"):
            return entries
        request.newest_cursor.CopyFrom(reply.next_cursor)
    raise api.error(
        Failure.OTHER,
        f"the audit log holds more than {MAX_LOG_PAGES} pages in {scope.since_days} days; "
        "run with a smaller --since",
    )


def _read(scope: AuditScope, environ: Mapping[str, str]) -> _Read:
    async def operation(api: ModalApi) -> _Read:
        from google.protobuf import empty_pb2

        read = _Read()

        async def part(what: str, call):
            try:
                return await call()
            except ModalCallError as error:
                read.refused.append(NotChecked(SYSTEM, what, str(error)))
                return None

        listed = await part(
            "the environment list", lambda: api.call("EnvironmentList", empty_pb2.Empty())
        )
        names = {item.environment_id: item.name for item in (listed.items if listed else [])}
        read.environment_id = next((i for i, n in names.items() if n == scope.environment), "")
        read.entries = await part("the audit log", lambda: _log(api, scope, names))
        users = await part("service users", lambda: api.call("ServiceUserList", empty_pb2.Empty()))
        read.users = list(users.service_users) if users is not None else None
        tokens = await part("member tokens", lambda: api.call("TokensList", empty_pb2.Empty()))
        read.tokens = list(tokens.tokens) if tokens is not None else None
        budget = await part("the spend cap", lambda: _budget(api, scope.environment))
        read.budget = budget
        return read

    return run_modal(
        f"audit Modal environment '{scope.environment}'",
        operation,
        policy=AUDIT_POLICY,
        environ=dict(environ),
    )


async def _budget(api: ModalApi, environment: str) -> list[BudgetStatus | None]:
    return [await live_budget(api, environment)]


def budget_findings(scope: AuditScope, status: BudgetStatus | None) -> SourceResult:
    """The spend cap: reached (high), none (high in prod, which must have one; low in dev), or
    most of it spent this cycle (medium)."""
    result = SourceResult()
    if status is None:
        return result  # the environment is gone: the service-user part says so
    said = budget_finding(status)
    if said is None:
        cap = f"${status.cap:,.2f}" if status.cap is not None else "no cap"
        result.activity.append(Activity(SYSTEM, f"spend this cycle ${status.usage:,.2f} of {cap}"))
        return result
    if status.limit_reached or (status.cap is None and scope.config.is_prod):
        severity = Severity.HIGH
    else:
        severity = Severity.LOW if status.cap is None else Severity.MEDIUM
    result.findings.append(
        Finding(
            SYSTEM,
            "modal-budget",
            severity,
            f"the spend cap of `{scope.environment}`",
            said,
            f"pulumi config set monthlyBudgetDollars DOLLARS --stack {scope.stack} "
            f"&& pulumi up --stack {scope.stack}",
        )
    )
    return result


def modal_source(scope: AuditScope, environ: Mapping[str, str]) -> SourceResult:
    result = SourceResult()
    try:
        read = _read(scope, environ)
    except ModalCallError as error:  # no token, no connection, a rejected token
        result.not_checked.append(
            NotChecked(SYSTEM, "audit log, service users, tokens", str(error))
        )
        return result
    result.not_checked += read.refused
    if read.entries is not None:
        result.extend(findings_from_log(scope, read.entries))
    if read.users is not None:
        result.extend(service_user_findings(scope, read.users, read.environment_id))
    if read.tokens is not None:
        result.extend(member_token_findings(scope, read.tokens))
    if read.budget is not None:
        result.extend(budget_findings(scope, read.budget[0]))
    return result
