"""Workspace RPCs of the fake Modal server: who a token is, service users, member tokens."""

from __future__ import annotations

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_rpc_base import (
    Caller,
    RpcBase,
    not_found,
)


class WorkspaceRpcs(RpcBase):
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
        # Timestamps here (pyi 17685-17688), epoch doubles in the lists below.
        times = self.state.token_times.get(caller.token_id)
        if times is not None:
            reply.created_at.FromMicroseconds(int(times.created_at * 1_000_000))
            if times.expires_at is not None:
                reply.expires_at.FromMicroseconds(int(times.expires_at * 1_000_000))
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
        principal = self.state.add_service_user(name, scoped=request.scoped)
        token_id, token_secret = self.server.add_token(name, kind="service_user")
        reply = api_pb2.ServiceUserCreateResponse(
            token_id=token_id, token_secret=token_secret, service_user_id=principal.id
        )
        # 0 means no expiry (modal/cli/workspace.py omits the field for "never").
        if request.expires_in_seconds:
            times = self.state.token_times[token_id]
            times.expires_at = times.created_at + request.expires_in_seconds
            reply.expires_at.FromMicroseconds(int(times.expires_at * 1_000_000))
        return reply

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
            token_ids = self.server.token_ids_of(principal.id)
            times = self.state.token_times.get(token_ids[0]) if token_ids else None
            user = api_pb2.ServiceUser(
                name=principal.name,
                service_user_id=principal.id,
                token_id=token_ids[0] if token_ids else "",
                created_by=self.state.owner.name,
                environment_roles=roles,
                scoped=principal.scoped,
            )
            if times is not None:
                user.created_at, user.last_used_at = times.created_at, times.last_used_at
                if times.expires_at is not None:
                    user.expires_at = times.expires_at
            users.append(user)
        return api_pb2.ServiceUserListResponse(service_users=users)

    def rpc_ServiceUserDelete(self, request: api_pb2.ServiceUserDeleteRequest, caller: Caller):
        self._require_manager(caller, "delete service users")
        principal = self.state.principals.get(request.service_user_id) or (
            self.state.principal_named(request.service_user_name, "service_user")
        )
        if principal is None or principal.kind != "service_user":
            raise not_found(f"Service user '{request.service_user_name}' not found")
        # Deleting a service user ends its credentials, as on Modal.
        self.server.remove_tokens_of(principal.id)
        self.state.remove_principal(principal.id)
        return empty_pb2.Empty()

    def rpc_TokensList(self, request, caller: Caller):
        tokens = []
        for token_id, principal_id, disabled in self.server.token_entries():
            principal = self.state.principals.get(principal_id)
            if principal is None or principal.kind != "user":
                continue  # member tokens only, like the service
            if not caller.principal.workspace_manager and principal.id != caller.principal.id:
                continue
            token = api_pb2.TokensListResponse.Token(
                token_id=token_id,
                workspace_id=self.state.workspace_id,
                user_id=principal.id,
                member_displayname=principal.name,
                disabled=disabled,
            )
            times = self.state.token_times.get(token_id)
            if times is not None:
                token.created_at, token.last_used_at = times.created_at, times.last_used_at
                if times.expires_at is not None:
                    token.expires_at = times.expires_at
            tokens.append(token)
        return api_pb2.TokensListResponse(tokens=tokens)

    def _own_or_managed_token(self, token_id: str, caller: Caller) -> None:
        owner = self.server.token_principal(token_id)
        if owner is None:
            raise not_found(f"Token '{token_id}' not found")
        if not caller.principal.workspace_manager and owner != caller.principal.id:
            raise GRPCError(
                Status.PERMISSION_DENIED, "Only workspace managers can manage others' tokens"
            )

    def rpc_TokenDelete(self, request: api_pb2.TokenDeleteRequest, caller: Caller):
        self._own_or_managed_token(request.token_id, caller)
        self.server.revoke_token(request.token_id)
        return empty_pb2.Empty()

    def rpc_TokenDisable(self, request: api_pb2.TokenDisableRequest, caller: Caller):
        for token_id in request.token_ids:
            self._own_or_managed_token(token_id, caller)
        for token_id in request.token_ids:
            self.server.disable_token(token_id)
        return empty_pb2.Empty()
