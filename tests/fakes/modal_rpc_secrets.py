"""Secret RPCs of the fake Modal server, and the app lookups the hook makes."""

from __future__ import annotations

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_rpc_base import (
    Caller,
    RpcBase,
    not_found,
    valid_object_name,
)
from tests.fakes.modal_state import FakeSecret, new_id


class SecretRpcs(RpcBase):
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
                raise not_found(f"Secret '{name}' not found in environment '{env.name}'")
            missing = sorted(set(request.required_keys) - set(existing.values))
            if missing:
                raise not_found(f"Secret '{name}' is missing required keys: {', '.join(missing)}")
            secret = existing
        else:
            if not valid_object_name(name):
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
            raise not_found(f"Secret '{secret_id}' not found")
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
