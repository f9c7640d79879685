"""Environment RPCs of the fake Modal server: list, create, update, delete, roles."""

from __future__ import annotations

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_rpc_base import (
    Caller,
    RpcBase,
    not_found,
    valid_environment_name,
)
from tests.fakes.modal_state import ROLES, FakeEnvironment


class EnvironmentRpcs(RpcBase):
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
        if not valid_environment_name(request.name):
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
                raise not_found(f"Environment '{request.deployment_name}' not found")
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
            raise not_found(f"Environment '{request.environment_id}' not found")
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
                entry.member_role = (
                    api_pb2.MEMBER_ROLE_OWNER
                    if principal is self.state.owner
                    else api_pb2.MEMBER_ROLE_MANAGER
                    if principal.workspace_manager
                    else api_pb2.MEMBER_ROLE_USER
                )
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
            raise not_found("Environment not found")
        principal_id = request.service_user_id or request.user_id
        if not principal_id and request.service_user_name:
            found = self.state.principal_named(request.service_user_name, "service_user")
            principal_id = found.id if found else ""
        principal = self.state.principals.get(principal_id)
        if principal is None:
            raise not_found("Principal not found in workspace")
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
