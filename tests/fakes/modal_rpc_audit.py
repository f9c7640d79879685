"""Audit-log RPCs of the fake Modal server: AuditLogSettingsGet and AuditLogList, and the log itself.

The log holds `FakeAuditEvent`s. Tests plant them with `add_audit_event`, and the server writes one
for each successful call that changes a secret, an app or a role (`log_audit_event`, called by the
dispatcher), so a change made with the real `modal` CLI shows up as Modal would log it.

Protocol (modal 1.6.4, `modal_proto/api_pb2.pyi`): `AuditLogListRequest` (pyi 3468: q, oldest_ms
inclusive, newest_ms exclusive, limit, oldest_cursor inclusive, newest_cursor exclusive; "entries
are read newest to oldest"), `AuditLogListResponse` (items newest first, `next_cursor` "set when
more entries may follow"), `AuditLogEntry` (pyi 3426: actor, action as a free string, targets,
context with environment id and name, `event_at` an ISO 8601 string, status "success"/"error",
`metadata_json`), `AuditLogSettingsGetResponse` (pyi 3557: page_size and friends). The SDK's
internal reader pages the same way (`modal/_audit_logs/list.py:27-50`).

Assumed, not known from the SDK: who may read the log (here: workspace managers, as for service
users) and the action names logged per RPC (`_ACTIONS`: `secret.create` and `app.deploy` are in
Modal's audit-log guide; the others follow its `<noun>.<verb>` pattern). The search query `q` is
not implemented: any non-empty `q` is refused, so a client relying on a filter fails loudly.
"""

from __future__ import annotations

import datetime
import itertools
import json
from dataclasses import dataclass, field

from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_rpc_base import Caller, RpcBase
from tests.fakes.modal_state import FakeModalState

PAGE_SIZE = 50  # small, so tests page
_ids = itertools.count(1)


@dataclass
class FakeAuditEvent:
    at: float  # epoch seconds
    action: str
    actor_type: str  # "user", "service_user", "oauth_grant" or "system"
    actor_name: str
    environment_name: str
    environment_id: str = ""
    actor_id: str = ""
    targets: tuple[tuple[str, str], ...] = ()
    source: str = "sdk"  # "sdk", "web" or "unknown"
    status: str = "success"
    metadata_json: str = "{}"
    id: str = field(default_factory=lambda: f"al-{next(_ids):08d}")

    @property
    def ms(self) -> int:
        return int(self.at * 1000)

    def entry(self, workspace_id: str) -> api_pb2.AuditLogEntry:
        stamp = datetime.datetime.fromtimestamp(self.at, datetime.UTC).isoformat()
        return api_pb2.AuditLogEntry(
            id=self.id,
            actor=api_pb2.AuditLogActor(
                type=self.actor_type, id=self.actor_id, name=self.actor_name
            ),
            action=self.action,
            targets=[api_pb2.AuditLogTarget(type=t, id=i) for t, i in self.targets],
            context=api_pb2.AuditLogContext(
                workspace_id=workspace_id,
                environment_id=self.environment_id,
                environment_name=self.environment_name,
                source=self.source,
            ),
            event_at=stamp,
            status=self.status,
            metadata_json=self.metadata_json,
        )


def _after(event: FakeAuditEvent, cursor: api_pb2.AuditLogCursor) -> bool:
    """Whether `event` comes after `cursor` in newest-first order (is older than it)."""
    return (event.ms, event.id) < (cursor.event_at_desc, cursor.id)


def add_audit_event(state: FakeModalState, event: FakeAuditEvent) -> FakeAuditEvent:
    """Log `event`; its environment id is filled in from its name where the name exists."""
    with state.lock:
        env = state.environments.get(event.environment_name)
        if env is not None and not event.environment_id:
            event.environment_id = env.id
        state.audit_events.append(event)
    return event


class AuditRpcs(RpcBase):
    def rpc_AuditLogSettingsGet(self, request, caller: Caller):
        return api_pb2.AuditLogSettingsGetResponse(
            bucket_size=1000,
            page_size=PAGE_SIZE,
            max_concurrent_requests=4,
            max_buffered_buckets=4,
            request_timeout_secs=10.0,
            plan_timeout_secs=10.0,
        )

    def rpc_AuditLogList(self, request: api_pb2.AuditLogListRequest, caller: Caller):
        self._require_manager(caller, "read the audit log")
        if request.q:
            raise GRPCError(Status.INVALID_ARGUMENT, "the fake supports no audit-log search query")
        events = sorted(self.state.audit_events, key=lambda e: (e.ms, e.id), reverse=True)
        selected = [
            e
            for e in events
            if e.ms >= request.oldest_ms
            and (not request.newest_ms or e.ms < request.newest_ms)
            and (not request.HasField("newest_cursor") or _after(e, request.newest_cursor))
            and (
                not request.HasField("oldest_cursor")
                or not _after(e, request.oldest_cursor)
                or e.id == request.oldest_cursor.id
            )
        ]
        limit = min(request.limit or PAGE_SIZE, PAGE_SIZE)
        page = selected[:limit]
        reply = api_pb2.AuditLogListResponse(items=[e.entry(self.state.workspace_id) for e in page])
        if len(selected) > limit:
            last = page[-1]
            reply.next_cursor.CopyFrom(api_pb2.AuditLogCursor(event_at_desc=last.ms, id=last.id))
        return reply

    # What the server logs of the calls it serves.
    def log_audit_event(self, rpc: str, request, caller: Caller) -> None:
        logged = self._action_of(rpc, request)
        if logged is None:
            return
        action, env_name, target = logged
        add_audit_event(
            self.state,
            FakeAuditEvent(
                at=datetime.datetime.now(datetime.UTC).timestamp(),
                action=action,
                actor_type=caller.principal.kind,
                actor_id=caller.principal.id,
                actor_name=caller.principal.name,
                environment_name=env_name,
                targets=(target,),
                metadata_json=json.dumps({"rpc": rpc}),
            ),
        )

    def _action_of(self, rpc: str, request) -> tuple[str, str, tuple[str, str]] | None:
        state = self.state
        if rpc == "SecretGetOrCreate":
            creation = request.object_creation_type
            if creation == api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS:
                action = "secret.update"
            elif creation in (
                api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS,
                api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING,
            ):
                action = "secret.create"
            else:
                return None
            env = state.resolve_environment(request.environment_name)
            secret = state.secrets.get((env.name, request.deployment_name)) if env else None
            return action, env.name if env else "", ("secret", secret.id if secret else "")
        if rpc == "SecretUpdate":
            secret = state.secret_by_id(request.secret_id)
            return (
                "secret.update",
                secret.environment if secret else "",
                ("secret", request.secret_id),
            )
        if rpc in ("AppPublish", "AppRollback", "AppStop"):
            app = state.apps.get(request.app_id)
            action = {"AppPublish": "app.deploy", "AppRollback": "app.rollback"}.get(
                rpc, "app.stop"
            )
            return action, app.environment if app else "", ("app", request.app_id)
        if rpc == "EnvironmentRoleSet":
            env = (
                state.environment_by_id(request.environment_id)
                if request.environment_id
                else state.resolve_environment(request.environment_name)
            )
            principal = request.service_user_id or request.user_id or request.service_user_name
            return "environment.set_role", env.name if env else "", ("principal", principal)
        return None
