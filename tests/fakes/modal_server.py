"""A fake Modal control plane that speaks Modal's real gRPC protocol (modal 1.6.4).

The servicer subclasses `modal_proto.api_grpc.ModalClientBase` and is served with grpclib on
127.0.0.1 (port 0), in plaintext, on its own thread and event loop, so the in-process SDK and
`modal` CLI subprocesses can both talk to it. It:

- checks the `x-modal-token-id` / `x-modal-token-secret` headers on every call (UNAUTHENTICATED
  on a mismatch) and maps each token to a principal, so restricted environments can deny access;
- keeps state in a `FakeModalState` (environments, roles, secrets, apps);
- records every call (RPC name, request message, outcome), so tests count RPCs from the server's
  point of view rather than trusting the client;
- answers UNIMPLEMENTED for any RPC it has no handler for, and records it: `unimplemented_calls()`
  lets a test assert the client never needed one;
- can inject faults: fail the next N calls of an RPC with a status, or hang them.

Handlers are grouped by area, one mixin each (`modal_rpc_workspace`, `modal_rpc_environments`,
`modal_rpc_budget`, `modal_rpc_secrets`, `modal_rpc_audit`); `modal_deploy` subclasses the servicer for the deploy RPCs. An RPC is an
`rpc_<Name>(self, request, caller) -> response` method. Handlers run under the state lock, on the server's
loop; raise `GRPCError(Status.X, message)` for errors.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from grpclib import GRPCError, Status
from grpclib.const import Cardinality
from grpclib.server import Server, Stream
from modal_proto import api_grpc, api_pb2

from tests.fakes.modal_rpc_audit import AuditRpcs
from tests.fakes.modal_rpc_base import Caller
from tests.fakes.modal_rpc_budget import BudgetRpcs
from tests.fakes.modal_rpc_environments import EnvironmentRpcs
from tests.fakes.modal_rpc_secrets import SecretRpcs
from tests.fakes.modal_rpc_workspace import WorkspaceRpcs
from tests.fakes.modal_state import FakeModalState, FakeTokenTimes

# RPCs that only read, given their arguments. Everything else counts as a mutation, so an RPC the
# fake learns later is counted as mutating until someone decides otherwise.
_READ_ONLY_RPCS = frozenset(
    {
        "ClientHello",
        "TokenInfoGet",
        "TokensList",
        "ServiceUserList",
        "WorkspaceNameLookup",
        "EnvironmentList",
        "EnvironmentGetRoles",
        "EnvironmentGetManaged",
        "EnvironmentGetBudget",
        "AuditLogList",
        "AuditLogSettingsGet",
        "SecretList",
        "SecretGetInfo",
        "AppList",
        "AppGetByDeploymentName",
        "AppGetLayout",
        "AppDeploymentHistory",
        "AppGetLifecycle",
        "FunctionGet",
    }
)
_LOOKUP_RPCS = frozenset({"EnvironmentGetOrCreate", "SecretGetOrCreate"})
FAKE_BUG = "FAKE_BUG"  # status recorded when a handler raised something other than a GRPCError


@dataclass(frozen=True)
class RecordedCall:
    """One RPC as the server saw it. `status` is "OK" or the gRPC status name it answered with."""

    rpc: str
    request: Message | None
    status: str
    principal: str | None
    metadata: dict[str, str] = field(default_factory=dict)  # headers, minus any token secret

    @property
    def mutating(self) -> bool:
        if self.rpc in _READ_ONLY_RPCS:
            return False
        if self.rpc in _LOOKUP_RPCS:
            creation = getattr(self.request, "object_creation_type", None)
            return creation not in (None, api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED)
        return True


@dataclass
class _Fault:
    status: Status | None  # None: hang instead of failing
    remaining: int | None  # None: every call until cleared
    message: str
    hang_seconds: float | None


class FakeModalServicer(
    WorkspaceRpcs, EnvironmentRpcs, BudgetRpcs, SecretRpcs, AuditRpcs, api_grpc.ModalClientBase
):
    """Dispatches every RPC through `_serve`; implemented RPCs are the `rpc_<Name>` methods."""

    def __init__(self, server: FakeModalServer) -> None:
        self.server = server
        self.state = server.state

    # Dispatch.
    def __mapping__(self):  # grpclib asks for the handler table once, when the server starts
        table = {}
        for path, handler in super().__mapping__().items():
            name = path.rsplit("/", 1)[1]
            table[path] = handler._replace(func=self._make_route(name, handler.cardinality))
        return table

    def _make_route(self, name: str, cardinality: Cardinality):
        async def route(stream: Stream) -> None:
            await self._serve(name, cardinality, stream)

        return route

    async def _serve(self, name: str, cardinality: Cardinality, stream: Stream) -> None:
        request = await stream.recv_message()
        server = self.server
        caller = server.authenticate(stream.metadata)
        fault = server.take_fault(name)
        if fault is not None:
            server.record(
                name,
                request,
                fault.status.name if fault.status else "HANG",
                caller,
                stream.metadata,
            )
            if fault.status is None:
                await server.hang(fault.hang_seconds)
                raise GRPCError(Status.UNAVAILABLE, f"fake Modal server hung {name}")
            raise GRPCError(fault.status, fault.message or f"injected {fault.status.name}")
        if caller is None:
            server.record(name, request, "UNAUTHENTICATED", None, stream.metadata)
            raise GRPCError(Status.UNAUTHENTICATED, "Invalid token id or secret")
        handler = getattr(self, f"rpc_{name}", None)
        if handler is None:
            server.record(name, request, "UNIMPLEMENTED", caller, stream.metadata)
            raise GRPCError(
                Status.UNIMPLEMENTED, f"the fake Modal server does not implement {name}"
            )
        try:
            with self.state.lock:
                reply = handler(request, caller)
        except GRPCError as exc:
            server.record(name, request, exc.status.name, caller, stream.metadata)
            raise
        except Exception as exc:
            # A bug in the fake must not look like a flaky server to the client's retries: answer
            # once with a status the client does not retry, and record it for the fixture to fail.
            server.record(name, request, FAKE_BUG, caller, stream.metadata)
            raise GRPCError(Status.FAILED_PRECONDITION, f"fake Modal server bug in {name}") from exc
        server.record(name, request, "OK", caller, stream.metadata)
        with self.state.lock:
            self.log_audit_event(name, request, caller)  # what Modal's audit log would record
        if cardinality in (Cardinality.UNARY_STREAM, Cardinality.STREAM_STREAM):
            for message in reply:
                await stream.send_message(message)
        else:
            await stream.send_message(reply)


# Every RPC is routed through `_serve` by `__mapping__`, so none of the abstract stubs is ever called.
FakeModalServicer.__abstractmethods__ = frozenset()


class FakeModalServer:
    """Runs a `FakeModalServicer` on 127.0.0.1:<free port> in a background thread.

    Use as a context manager, or call `start()` / `stop()`. Thread-safe accessors (`calls`,
    `inject`, `hang_next`, ...) can be used from the test thread while clients talk to it.
    """

    def __init__(
        self,
        state: FakeModalState | None = None,
        servicer_class: type[FakeModalServicer] = FakeModalServicer,
    ) -> None:
        self.state = state or FakeModalState()
        self._servicer_class = servicer_class
        self._lock = threading.Lock()
        self._calls: list[RecordedCall] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._tokens: dict[str, tuple[str, str]] = {}  # token id -> (secret, principal id)
        self._disabled_tokens: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._grpc_server: Server | None = None
        self._release_hangs: asyncio.Event | None = None
        self.port = 0
        self.token_id, self.token_secret = self.add_token(self.state.owner.name)

    # Lifecycle.
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeModalServer:
        ready: Future[int] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        self.port = ready.result(timeout=10)
        return self

    def _run(self, ready: Future[int]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def serve() -> None:
            self._release_hangs = asyncio.Event()
            self._grpc_server = Server([self._servicer_class(self)])
            await self._grpc_server.start("127.0.0.1", 0)
            sockets = self._grpc_server._server.sockets  # noqa: SLF001 - grpclib exposes no port
            ready.set_result(sockets[0].getsockname()[1])

        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # report start failures to the caller, not to stderr
            ready.set_exception(exc)
            return
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        loop, server = self._loop, self._grpc_server
        if loop is None or server is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._release_hangs is not None
            self._release_hangs.set()
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=5)
            except TimeoutError:
                pass

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> FakeModalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Tokens.
    def add_token(self, principal_name: str, kind: str | None = None) -> tuple[str, str]:
        """A new token for an existing principal (user or service user), made up at runtime."""
        with self.state.lock:
            principal = next(
                p
                for p in self.state.principals.values()
                if p.name == principal_name and kind in (None, p.kind)
            )
        token_id = "ak-" + secrets.token_hex(12)
        token_secret = "as-" + secrets.token_hex(12)
        with self._lock:
            self._tokens[token_id] = (token_secret, principal.id)
        with self.state.lock:
            self.state.token_times[token_id] = FakeTokenTimes(created_at=time.time())
        return token_id, token_secret

    def token_ids_of(self, principal_id: str) -> list[str]:
        with self._lock:
            return [t for t, (_, p) in self._tokens.items() if p == principal_id]

    def token_principal(self, token_id: str) -> str | None:
        with self._lock:
            known = self._tokens.get(token_id)
        return known[1] if known else None

    def token_entries(self) -> list[tuple[str, str, bool]]:
        """(token id, principal id, disabled) for every live token."""
        with self._lock:
            return [(t, p, t in self._disabled_tokens) for t, (_, p) in self._tokens.items()]

    def revoke_token(self, token_id: str) -> None:
        """Delete a token: every later call made with it is UNAUTHENTICATED."""
        with self._lock:
            self._tokens.pop(token_id, None)
            self._disabled_tokens.discard(token_id)

    def disable_token(self, token_id: str) -> None:
        with self._lock:
            if token_id in self._tokens:
                self._disabled_tokens.add(token_id)

    def remove_tokens_of(self, principal_id: str) -> None:
        for token_id in self.token_ids_of(principal_id):
            self.revoke_token(token_id)

    def authenticate(self, metadata: Any) -> Caller | None:
        token_id = metadata.get("x-modal-token-id", "")
        token_secret = metadata.get("x-modal-token-secret", "")
        with self._lock:
            known = self._tokens.get(token_id)
            disabled = token_id in self._disabled_tokens
        if known is None or disabled or not secrets.compare_digest(known[0], token_secret):
            return None
        principal = self.state.principals.get(known[1])
        if principal is None:
            return None
        with self.state.lock:
            times = self.state.token_times.get(token_id)
        if times is not None and times.expires_at is not None and times.expires_at <= time.time():
            return None  # an expired token is refused like an unknown one
        return Caller(principal, token_id)

    # Recording.
    def record(
        self,
        rpc: str,
        request: Message | None,
        status: str,
        caller: Caller | None,
        metadata: Any = None,
    ) -> None:
        headers = {k: v for k, v in (metadata or {}).items() if "secret" not in k}
        principal = caller.principal.name if caller else None
        with self._lock:
            self._calls.append(RecordedCall(rpc, request, status, principal, headers))

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def rpc_names(self) -> list[str]:
        return [call.rpc for call in self.calls]

    def mutating_calls(self) -> list[RecordedCall]:
        return [call for call in self.calls if call.mutating]

    def unimplemented_calls(self) -> list[RecordedCall]:
        return [call for call in self.calls if call.status == "UNIMPLEMENTED"]

    def fake_bugs(self) -> list[RecordedCall]:
        return [call for call in self.calls if call.status == FAKE_BUG]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # Faults.
    def inject(
        self,
        rpc: str,
        status: Status = Status.UNAVAILABLE,
        times: int | None = 1,
        message: str = "",
    ) -> None:
        """Fail the next `times` calls of `rpc` with `status` (every call if `times` is None)."""
        self._check_rpc(rpc)
        with self._lock:
            self._faults.setdefault(rpc, []).append(_Fault(status, times, message, None))

    def hang_next(self, rpc: str, times: int | None = 1, seconds: float | None = None) -> None:
        """Make the next `times` calls of `rpc` hang (for `seconds`, or until the server stops)."""
        self._check_rpc(rpc)
        with self._lock:
            self._faults.setdefault(rpc, []).append(_Fault(None, times, "", seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, rpc: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(rpc)
            if not queue:
                return None
            fault = queue[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.pop(0)
            return fault

    async def hang(self, seconds: float | None) -> None:
        assert self._release_hangs is not None
        try:
            await asyncio.wait_for(self._release_hangs.wait(), timeout=seconds)
        except TimeoutError:
            pass

    @staticmethod
    def _check_rpc(rpc: str) -> None:
        # A typo would make a fault test pass without injecting anything.
        if not hasattr(api_grpc.ModalClientBase, rpc):
            raise ValueError(f"{rpc!r} is not an RPC of modal 1.6.4's ModalClient service")


def rpc_counts(calls: Iterable[RecordedCall]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.rpc] = counts.get(call.rpc, 0) + 1
    return counts
