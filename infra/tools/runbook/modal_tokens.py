"""Modal tokens as the runbook handles them: the fallback deploy token's config keys, who Modal
says a token is, whether it reaches an environment, the workspace's service users, creating one and
revoking a token."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.core import names
from infra.core.config import RawValue
from infra.core.config_schema import ROTATION_NAMESPACE, full_key
from infra.core.errors import Failure, ModalCallError, RotationError
from infra.core.secrets import SecretStr, mask_id
from infra.modal_hook.client import (
    TOKEN_ID_VARIABLE,
    TOKEN_SECRET_VARIABLE,
    ModalApi,
    run_modal,
)

# The fallback deploy token (`rentagpu:modalTokenId`/`modalTokenSecret`, adopted by `ModalCiToken`),
# and where a rotation keeps the old one until it is revoked (a namespace the program never reads).
FALLBACK_ID_KEY = full_key("modalTokenId")
FALLBACK_SECRET_KEY = full_key("modalTokenSecret")
FALLBACK_ROLE = names.CI_TOKEN_ROLES["deploy"]


def _previous(key: str) -> str:
    """`rentagpu:modalTokenId` -> `rentagpu-rotation:previousModalTokenId`."""
    short = key.split(":", 1)[1]
    return f"{ROTATION_NAMESPACE}:previous{short[0].upper()}{short[1:]}"


PREVIOUS_ID_KEY = _previous(FALLBACK_ID_KEY)
PREVIOUS_SECRET_KEY = _previous(FALLBACK_SECRET_KEY)


def uses_fallback(raw: Mapping[str, RawValue]) -> bool:
    """Whether the stack's config supplies CI's deploy token (else `pulumi up` mints it)."""
    found = raw.get(FALLBACK_ID_KEY)
    return found is not None and bool(found.value)


@dataclass(frozen=True)
class ModalToken:
    id: SecretStr = field(repr=False)
    secret: SecretStr = field(repr=False)

    def values(self) -> tuple[str, str]:
        return self.id.reveal(), self.secret.reveal()

    @property
    def masked(self) -> str:
        return mask_id(self.id.reveal())


@dataclass(frozen=True)
class TokenIdentity:
    """Who a token belongs to, as Modal's TokenInfoGet reports it (names and ids are not secret)."""

    kind: str  # "service_user" or "user"
    principal: str
    workspace_id: str
    workspace_name: str

    def describe(self) -> str:
        who = "service user" if self.kind == "service_user" else "member"
        return f"{who} '{self.principal}' of workspace '{self.workspace_name}'"


def _modal_environ(token: ModalToken | None) -> dict[str, str]:
    environ = dict(os.environ)
    if token is not None:
        environ[TOKEN_ID_VARIABLE], environ[TOKEN_SECRET_VARIABLE] = token.values()
    return environ


def _as_token(token: ModalToken, action: str, operation, refused: tuple[Failure, ...], answer):
    """Run `operation` with `token` (not the operator's); `answer` when Modal refuses it so."""
    try:
        return run_modal(action, operation, environ=_modal_environ(token), secrets=token.values())
    except ModalCallError as error:
        if error.failure in refused:
            return answer
        raise


def identify_token(token: ModalToken, what: str) -> TokenIdentity | None:
    """Ask Modal who `token` is (TokenInfoGet); None when Modal rejects it."""

    async def operation(api: ModalApi) -> TokenIdentity:
        from modal_proto import api_pb2

        reply = await api.call("TokenInfoGet", api_pb2.TokenInfoGetRequest())
        if reply.HasField("service_user_identity"):
            kind, principal = "service_user", reply.service_user_identity.service_user_name
        else:
            kind, principal = "user", reply.user_identity.username
        return TokenIdentity(kind, principal, reply.workspace_id, reply.workspace_name)

    return _as_token(token, f"check the {what} with Modal", operation, (Failure.AUTH,), None)


def reaches_environment(token: ModalToken, environment: str) -> bool:
    """Whether `token` can look up the runtime secret in the stack's Modal environment.

    That is what CI's `pulumi up` and deploy do first, so it proves the role, not just the token.
    """

    async def operation(api: ModalApi) -> bool:
        from modal_proto import api_pb2

        request = api_pb2.SecretGetOrCreateRequest(
            deployment_name=names.RUNTIME_SECRET_NAME, environment_name=environment
        )
        await api.call("SecretGetOrCreate", request)
        return True

    refused = (Failure.AUTH, Failure.PERMISSION_DENIED, Failure.NOT_FOUND)
    return _as_token(token, f"reach Modal environment '{environment}'", operation, refused, False)


def create_service_user(name: str) -> ModalToken:
    """A new service user and its token, made with the operator's token (MODAL_TOKEN_*).

    Scoped, as `ModalCiToken` mints CI's: it reaches only the environments it is given a role in
    (`ServiceUserCreateRequest.scoped`, field 2; the SDK 1.6.4 never sets it, see
    infra/modal_hook/ci_token.py). It holds no role until `pulumi up` grants it one.
    """

    async def operation(api: ModalApi) -> ModalToken:
        from modal_proto import api_pb2

        request = api_pb2.ServiceUserCreateRequest(name=name, scoped=True)
        reply = await api.call("ServiceUserCreate", request)
        return ModalToken(SecretStr(reply.token_id), SecretStr(reply.token_secret))

    try:
        return run_modal(f"create Modal service user '{name}'", operation)
    except ModalCallError as error:
        if error.failure is Failure.ALREADY_EXISTS:
            raise RotationError(
                f"Modal service user '{name}' already exists and its token cannot be shown "
                f"again; pick a new name (e.g. --create-service-user {fallback_user_name(name)})"
            ) from None
        raise


def fallback_user_name(taken: str = "") -> str:
    """A name to suggest for a new fallback service user (never one of CI's minted names)."""
    suggestion = f"rentagpu-ci-fallback-{datetime.date.today():%Y%m%d}"
    return suggestion if suggestion != taken else f"{suggestion}-2"


@dataclass(frozen=True)
class ServiceUser:
    """A service user as `ServiceUserList` shows it (modal_proto `ServiceUser`: name,
    service_user_id, token_id, scoped, optional expires_at (epoch double), environment_roles)."""

    name: str
    id: str
    token_id: str = field(repr=False)
    roles: Mapping[str, str]  # environment name -> role
    scoped: bool
    expires_at: float | None

    def describe(self) -> str:
        roles = ", ".join(f"{role} in '{env}'" for env, role in sorted(self.roles.items()))
        expiry = (
            f"expires {datetime.datetime.fromtimestamp(self.expires_at, datetime.UTC):%Y-%m-%d}"
            if self.expires_at
            else "no expiry"
        )
        scope = "scoped" if self.scoped else "NOT scoped"
        return f"'{self.name}': {roles or 'no role'}; {scope}; token {mask_id(self.token_id)}, {expiry}"


def list_service_users() -> list[ServiceUser]:
    """Every service user of the workspace, with the operator's token (a workspace manager's)."""

    async def operation(api: ModalApi) -> list[ServiceUser]:
        from google.protobuf import empty_pb2

        reply = await api.call("ServiceUserList", empty_pb2.Empty())
        return [
            ServiceUser(
                name=user.name,
                id=user.service_user_id,
                token_id=user.token_id,
                roles={r.environment_name: r.role_str for r in user.environment_roles},
                scoped=user.scoped,
                expires_at=user.expires_at if user.HasField("expires_at") else None,
            )
            for user in reply.service_users
        ]

    try:
        return run_modal("list Modal service users", operation)
    except ModalCallError as error:
        if error.failure in (Failure.AUTH, Failure.PERMISSION_DENIED):
            raise RotationError(
                f"Modal refused to list service users ({error.failure.value}): run with a "
                "workspace manager's MODAL_TOKEN_ID/MODAL_TOKEN_SECRET"
            ) from None
        raise


def revoke_modal_token(
    old: ModalToken, old_identity: TokenIdentity | None, new_identity: TokenIdentity | None
) -> str:
    """Revoke `old` with the operator's token; return what was done, in words."""
    own_user = (
        old_identity is not None
        and old_identity.kind == "service_user"
        and (new_identity is None or new_identity.principal != old_identity.principal)
    )

    async def operation(api: ModalApi) -> str:
        from modal_proto import api_pb2

        try:
            if own_user:
                assert old_identity is not None
                request = api_pb2.ServiceUserDeleteRequest(service_user_name=old_identity.principal)
                await api.call("ServiceUserDelete", request)
                return f"deleted service user '{old_identity.principal}' (its only token with it)"
            await api.call("TokenDelete", api_pb2.TokenDeleteRequest(token_id=old.id.reveal()))
            return f"deleted token {old.masked}"
        except ModalCallError as error:
            if error.failure is Failure.NOT_FOUND:
                return "nothing to delete: Modal no longer has it"
            raise

    return run_modal("revoke the old Modal token", operation, secrets=old.values())


def find_modal_token(token_id: str) -> str | None:
    """Which member or service user still holds `token_id` (TokensList, ServiceUserList)."""

    async def operation(api: ModalApi) -> str | None:
        from google.protobuf import empty_pb2

        members = await api.call("TokensList", empty_pb2.Empty())
        for token in members.tokens:
            if token.token_id == token_id:
                state = "disabled" if token.disabled else "active"
                return f"{state} member token of '{token.member_displayname}'"
        users = await api.call("ServiceUserList", empty_pb2.Empty())
        for user in users.service_users:
            if user.token_id == token_id:
                return f"token of service user '{user.name}'"
        return None

    return run_modal("list Modal tokens and service users", operation, secrets=[token_id])


def token_from_config(
    raw: Mapping[str, RawValue], id_key: str, secret_key: str
) -> ModalToken | None:
    token_id, secret = raw.get(id_key), raw.get(secret_key)
    if token_id is None or secret is None or not token_id.value or not secret.value:
        return None
    return ModalToken(SecretStr(token_id.value), SecretStr(secret.value))
