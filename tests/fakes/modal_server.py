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

Adding RPCs (the deploy task needs AppCreate, FunctionCreate, AppPublish, ...): subclass
`FakeModalServicer`, add `rpc_<Name>(self, request, caller) -> response` methods, and pass the
class as `FakeModalServer(servicer_class=...)`. Handlers run under the state lock, on the server's
loop; raise `GRPCError(Status.X, message)` for errors.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import empty_pb2
from google.protobuf.message import Message
from grpclib import GRPCError, Status
from grpclib.const import Cardinality
from grpclib.server import Server, Stream
from modal_proto import api_grpc, api_pb2

from tests.fakes.modal_state import (
    ROLES,
    FakeEnvironment,
    FakeModalState,
    FakePrincipal,
    FakeSecret,
    new_id,
)

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


@dataclass(frozen=True)
class Caller:
    """Who made a call, resolved from the token headers."""

    principal: FakePrincipal
    token_id: str


def _not_found(what: str) -> GRPCError:
    return GRPCError(Status.NOT_FOUND, what)


def _valid_object_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name)


def _valid_environment_name(name: str) -> bool:
    return (
        0 < len(name) <= 64
        and name[0].isalnum()
        and all(c.isalnum() or c in "-_" for c in name)
        and not name.lower().startswith("en-")
    )


class FakeModalServicer(api_grpc.ModalClientBase):
    """Dispatches every RPC through `_serve`; implemented RPCs are the `rpc_<Name>` methods."""

    def __init__(self, server: FakeModalServer) -> None:
        self._server = server
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
        server = self._server
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
        if cardinality in (Cardinality.UNARY_STREAM, Cardinality.STREAM_STREAM):
            for message in reply:
                await stream.send_message(message)
        else:
            await stream.send_message(reply)

    # Authorization.
    def _require_manager(self, caller: Caller, action: str) -> None:
        if not caller.principal.workspace_manager:
            raise GRPCError(
                Status.PERMISSION_DENIED,
                f"Only workspace managers can {action}; {caller.principal.name} is not one",
            )

    def _require_access(self, env: FakeEnvironment, caller: Caller, *, write: bool) -> None:
        if caller.principal.workspace_manager or not env.restricted:
            return
        role, _ = self.state.role_of(env, caller.principal)
        allowed = ("contributor",) if write else ("contributor", "viewer")
        if role not in allowed:
            raise GRPCError(
                Status.PERMISSION_DENIED,
                f"{caller.principal.name} has role '{role}' in restricted environment '{env.name}'",
            )

    def _environment(self, name: str) -> FakeEnvironment:
        env = self.state.resolve_environment(name)
        if env is None:
            raise _not_found(f"Environment '{name}' not found")
        return env

    # Tokens and hello.
    def rpc_ClientHello(self, request, caller: Caller):
        return api_pb2.ClientHelloResponse()

    def rpc_TokenInfoGet(self, request, caller: Caller):
        reply = api_pb2.TokenInfoGetResponse(
            token_id=caller.token_id,
            workspace_id=self.state.workspace_id,
            workspace_name=self.state.workspace_name,
        )
        if caller.principal.kind == "service_user":
            reply.service_user_identity.service_user_id = caller.principal.id
            reply.service_user_identity.service_user_name = caller.principal.name
        else:
            reply.user_identity.user_id = caller.principal.id
            reply.user_identity.username = caller.principal.name
        return reply

    # Service users and member tokens (what `rotate` and `incident` use).
    def rpc_WorkspaceNameLookup(self, request, caller: Caller):
        # `modal.Workspace.from_context()` hydrates with this before any workspace call.
        return api_pb2.WorkspaceNameLookupResponse(
            workspace_name=self.state.workspace_name, username=self.state.workspace_name
        )

    def rpc_ServiceUserCreate(self, request: api_pb2.ServiceUserCreateRequest, caller: Caller):
        self._require_manager(caller, "create service users")
        name = request.name
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise GRPCError(Status.INVALID_ARGUMENT, f"Invalid service user name: '{name}'")
        if self.state.principal_named(name, "service_user") is not None:
            raise GRPCError(Status.ALREADY_EXISTS, f"Service user '{name}' already exists")
        principal = self.state.add_service_user(name)
        token_id, token_secret = self._server.add_token(name, kind="service_user")
        return api_pb2.ServiceUserCreateResponse(
            token_id=token_id, token_secret=token_secret, service_user_id=principal.id
        )

    def rpc_ServiceUserList(self, request, caller: Caller):
        self._require_manager(caller, "list service users")
        users = []
        for principal in self.state.principals.values():
            if principal.kind != "service_user":
                continue
            roles = [
                api_pb2.ServiceUser.EnvironmentRoleEntry(
                    environment_id=env.id, environment_name=env.name, role_str=role
                )
                for env in self.state.environments.values()
                if (role := env.roles.get(principal.id))
            ]
            token_ids = self._server.token_ids_of(principal.id)
            users.append(
                api_pb2.ServiceUser(
                    name=principal.name,
                    service_user_id=principal.id,
                    token_id=token_ids[0] if token_ids else "",
                    created_by=self.state.owner.name,
                    environment_roles=roles,
                )
            )
        return api_pb2.ServiceUserListResponse(service_users=users)

    def rpc_ServiceUserDelete(self, request: api_pb2.ServiceUserDeleteRequest, caller: Caller):
        self._require_manager(caller, "delete service users")
        principal = self.state.principals.get(request.service_user_id) or (
            self.state.principal_named(request.service_user_name, "service_user")
        )
        if principal is None or principal.kind != "service_user":
            raise _not_found(f"Service user '{request.service_user_name}' not found")
        # Deleting a service user ends its credentials, as on Modal.
        self._server.remove_tokens_of(principal.id)
        self.state.remove_principal(principal.id)
        return empty_pb2.Empty()

    def rpc_TokensList(self, request, caller: Caller):
        tokens = []
        for token_id, principal_id, disabled in self._server.token_entries():
            principal = self.state.principals.get(principal_id)
            if principal is None or principal.kind != "user":
                continue  # member tokens only, like the service
            if not caller.principal.workspace_manager and principal.id != caller.principal.id:
                continue
            tokens.append(
                api_pb2.TokensListResponse.Token(
                    token_id=token_id,
                    workspace_id=self.state.workspace_id,
                    user_id=principal.id,
                    member_displayname=principal.name,
                    disabled=disabled,
                )
            )
        return api_pb2.TokensListResponse(tokens=tokens)

    def _own_or_managed_token(self, token_id: str, caller: Caller) -> None:
        owner = self._server.token_principal(token_id)
        if owner is None:
            raise _not_found(f"Token '{token_id}' not found")
        if not caller.principal.workspace_manager and owner != caller.principal.id:
            raise GRPCError(
                Status.PERMISSION_DENIED, "Only workspace managers can manage others' tokens"
            )

    def rpc_TokenDelete(self, request: api_pb2.TokenDeleteRequest, caller: Caller):
        self._own_or_managed_token(request.token_id, caller)
        self._server.revoke_token(request.token_id)
        return empty_pb2.Empty()

    def rpc_TokenDisable(self, request: api_pb2.TokenDisableRequest, caller: Caller):
        for token_id in request.token_ids:
            self._own_or_managed_token(token_id, caller)
        for token_id in request.token_ids:
            self._server.disable_token(token_id)
        return empty_pb2.Empty()

    # Environments.
    def _list_item(self, env: FakeEnvironment) -> api_pb2.EnvironmentListItem:
        return api_pb2.EnvironmentListItem(
            name=env.name,
            environment_id=env.id,
            created_at=env.created_at,
            default=env.default,
            is_managed=env.restricted,
            webhook_suffix=env.webhook_suffix,
        )

    def rpc_EnvironmentList(self, request, caller: Caller):
        items = [self._list_item(e) for e in self.state.environments.values()]
        return api_pb2.EnvironmentListResponse(items=items)

    def rpc_EnvironmentCreate(self, request: api_pb2.EnvironmentCreateRequest, caller: Caller):
        self._require_manager(caller, "create environments")
        if not _valid_environment_name(request.name):
            raise GRPCError(Status.INVALID_ARGUMENT, f"Invalid environment name: '{request.name}'")
        if request.name in self.state.environments:
            raise GRPCError(Status.ALREADY_EXISTS, f"Environment '{request.name}' already exists")
        self.state.add_environment(
            request.name,
            restricted=request.is_managed,
            default_role=request.default_member_role_str,
        )
        return empty_pb2.Empty()

    def rpc_EnvironmentGetOrCreate(self, request: api_pb2.EnvironmentGetOrCreateRequest, caller):
        env = self.state.resolve_environment(request.deployment_name)
        if env is None:
            if request.object_creation_type != api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING:
                raise _not_found(f"Environment '{request.deployment_name}' not found")
            self._require_manager(caller, "create environments")
            env = self.state.add_environment(request.deployment_name)
        metadata = api_pb2.EnvironmentMetadata(name=env.name)
        return api_pb2.EnvironmentGetOrCreateResponse(environment_id=env.id, metadata=metadata)

    def rpc_EnvironmentUpdate(self, request: api_pb2.EnvironmentUpdateRequest, caller: Caller):
        self._require_manager(caller, "update environments")
        env = self._environment(request.current_name)
        if request.HasField("name") and request.name.value != env.name:
            new_name = request.name.value
            if new_name in self.state.environments:
                raise GRPCError(Status.ALREADY_EXISTS, f"Environment '{new_name}' already exists")
            del self.state.environments[env.name]
            for (env_name, secret_name), secret in list(self.state.secrets.items()):
                if env_name == env.name:
                    del self.state.secrets[(env_name, secret_name)]
                    secret.environment = new_name
                    self.state.secrets[(new_name, secret_name)] = secret
            for app in self.state.apps_in(env.name):
                app.environment = new_name
            env.name = new_name
            self.state.environments[new_name] = env
        if request.HasField("web_suffix"):
            env.webhook_suffix = request.web_suffix.value
        return self._list_item(env)

    def rpc_EnvironmentDelete(self, request: api_pb2.EnvironmentDeleteRequest, caller: Caller):
        self._require_manager(caller, "delete environments")
        env = self._environment(request.name)
        if env.default:
            raise GRPCError(Status.FAILED_PRECONDITION, "The default environment cannot be deleted")
        self.state.delete_environment(env.name)
        return empty_pb2.Empty()

    def rpc_EnvironmentGetRoles(self, request: api_pb2.EnvironmentGetRolesRequest, caller):
        env = self.state.environment_by_id(request.environment_id)
        if env is None:
            raise _not_found(f"Environment '{request.environment_id}' not found")
        principals = []
        for principal in self.state.principals.values():
            role, explicit = self.state.role_of(env, principal)
            entry = api_pb2.EnvironmentGetRolesResponse.Principal(
                role_str=role,
                has_role_assignment=explicit,
                inherits_default_member_role=not explicit,
            )
            if principal.kind == "service_user":
                entry.service_user_id = principal.id
                entry.service_user_name = principal.name
            else:
                entry.user_id = principal.id
                entry.user_name = principal.name
            principals.append(entry)
        return api_pb2.EnvironmentGetRolesResponse(
            name=env.name, created_at=env.created_at, principal_roles=principals
        )

    def rpc_EnvironmentRoleSet(self, request: api_pb2.EnvironmentRoleSetRequest, caller: Caller):
        self._require_manager(caller, "set environment roles")
        env = (
            self.state.environment_by_id(request.environment_id)
            if request.environment_id
            else self.state.resolve_environment(request.environment_name)
        )
        if env is None:
            raise _not_found("Environment not found")
        principal_id = request.service_user_id or request.user_id
        if not principal_id and request.service_user_name:
            found = self.state.principal_named(request.service_user_name, "service_user")
            principal_id = found.id if found else ""
        principal = self.state.principals.get(principal_id)
        if principal is None:
            raise _not_found("Principal not found in workspace")
        if principal.kind == "user" and not env.restricted:
            raise GRPCError(
                Status.FAILED_PRECONDITION,
                "Workspace members can only be assigned roles in restricted environments",
            )
        role = request.role_str or {
            api_pb2.ENVIRONMENT_ROLE_CONTRIBUTOR: "contributor",
            api_pb2.ENVIRONMENT_ROLE_VIEWER: "viewer",
            api_pb2.ENVIRONMENT_ROLE_NO_ACCESS: "no-access",
        }.get(request.role, "")
        if request.role == api_pb2.ENVIRONMENT_ROLE_UNSPECIFIED and not request.role_str:
            env.roles.pop(principal.id, None)  # back to the default
        elif role in ROLES:
            env.roles[principal.id] = role
        else:
            raise GRPCError(Status.INVALID_ARGUMENT, f"Unknown role: '{request.role_str}'")
        return empty_pb2.Empty()

    # Secrets.
    def _secret_metadata(self, secret) -> api_pb2.SecretMetadata:
        return api_pb2.SecretMetadata(
            name=secret.name,
            keys=sorted(secret.values),
            environment_name=secret.environment,
            creation_info=api_pb2.CreationInfo(
                created_at=secret.created_at, created_by=secret.created_by
            ),
        )

    def rpc_SecretGetOrCreate(self, request: api_pb2.SecretGetOrCreateRequest, caller: Caller):
        creation = request.object_creation_type
        env = self._environment(request.environment_name)
        values = dict(request.env_dict)
        if creation in (
            api_pb2.OBJECT_CREATION_TYPE_EPHEMERAL,
            api_pb2.OBJECT_CREATION_TYPE_ANONYMOUS_OWNED_BY_APP,
        ):
            self._require_access(env, caller, write=True)
            secret = FakeSecret(
                new_id("st"), env.name, "", values, self.state.now(), caller.principal.name
            )
            self.state.anonymous_secrets[secret.id] = secret
            return api_pb2.SecretGetOrCreateResponse(
                secret_id=secret.id, metadata=self._secret_metadata(secret)
            )
        name = request.deployment_name
        write = creation != api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED
        self._require_access(env, caller, write=write)
        existing = self.state.secrets.get((env.name, name))
        if creation == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED:
            if existing is None:
                raise _not_found(f"Secret '{name}' not found in environment '{env.name}'")
            missing = sorted(set(request.required_keys) - set(existing.values))
            if missing:
                raise _not_found(f"Secret '{name}' is missing required keys: {', '.join(missing)}")
            secret = existing
        else:
            if not _valid_object_name(name):
                raise GRPCError(Status.INVALID_ARGUMENT, f"Invalid Secret name: '{name}'")
            if (
                existing is not None
                and creation == api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS
            ):
                raise GRPCError(
                    Status.ALREADY_EXISTS,
                    f"Secret '{name}' already exists in environment '{env.name}'",
                )
            if existing is not None and creation == api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING:
                secret = existing  # keeps the old values, like the real service
            else:
                # CREATE_OVERWRITE_IF_EXISTS replaces the whole dict in place: same id, new keys.
                secret = self.state.put_secret(env.name, name, values, caller.principal.name)
        return api_pb2.SecretGetOrCreateResponse(
            secret_id=secret.id, metadata=self._secret_metadata(secret)
        )

    def rpc_SecretList(self, request: api_pb2.SecretListRequest, caller: Caller):
        env = self._environment(request.environment_name)
        self._require_access(env, caller, write=False)
        found = sorted(
            (s for (e, _), s in self.state.secrets.items() if e == env.name),
            key=lambda s: s.created_at,
            reverse=True,
        )
        before = request.pagination.created_before
        if before:
            found = [s for s in found if s.created_at < before]
        if request.pagination.max_objects:
            found = found[: request.pagination.max_objects]
        items = [
            api_pb2.SecretListItem(
                label=s.name,
                created_at=s.created_at,
                environment_name=env.name,
                secret_id=s.id,
                metadata=self._secret_metadata(s),
            )
            for s in found
        ]
        return api_pb2.SecretListResponse(items=items, environment_name=env.name)

    def _secret_by_id(self, secret_id: str, caller: Caller, *, write: bool):
        secret = self.state.secret_by_id(secret_id)
        if secret is None:
            raise _not_found(f"Secret '{secret_id}' not found")
        env = self._environment(secret.environment)
        self._require_access(env, caller, write=write)
        return secret

    def rpc_SecretGetInfo(self, request: api_pb2.SecretGetInfoRequest, caller: Caller):
        secret = self._secret_by_id(request.secret_id, caller, write=False)
        return api_pb2.SecretGetInfoResponse(metadata=self._secret_metadata(secret))

    def rpc_SecretUpdate(self, request: api_pb2.SecretUpdateRequest, caller: Caller):
        secret = self._secret_by_id(request.secret_id, caller, write=True)
        for update in request.updates:
            secret.values[update.key] = update.value
        return empty_pb2.Empty()

    def rpc_SecretDelete(self, request: api_pb2.SecretDeleteRequest, caller: Caller):
        secret = self._secret_by_id(request.secret_id, caller, write=True)
        self.state.secrets.pop((secret.environment, secret.name), None)
        self.state.anonymous_secrets.pop(secret.id, None)
        return empty_pb2.Empty()

    # -- apps (reads only; the deploy task adds AppCreate, FunctionCreate, AppPublish, ...) -
    def rpc_AppList(self, request: api_pb2.AppListRequest, caller: Caller):
        env = self._environment(request.environment_name)
        self._require_access(env, caller, write=False)
        apps = [
            api_pb2.AppListResponse.AppListItem(
                app_id=app.id,
                name=app.name,
                description=app.description or app.name,
                state=app.state,
                created_at=app.created_at,
            )
            for app in self.state.apps_in(env.name)
        ]
        return api_pb2.AppListResponse(apps=apps)

    def rpc_AppGetByDeploymentName(self, request: api_pb2.AppGetByDeploymentNameRequest, caller):
        env = self._environment(request.environment_name)
        self._require_access(env, caller, write=False)
        app = next((a for a in self.state.apps_in(env.name) if a.name == request.name), None)
        return api_pb2.AppGetByDeploymentNameResponse(
            app_id=app.id if app else "", environment_name=env.name
        )


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
