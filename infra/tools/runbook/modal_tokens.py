"""A stack's Modal tokens as the runbook handles them: where each lives, and what Modal says of it."""

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


@dataclass(frozen=True)
class TokenSlot:
    """Where one Modal token of a stack lives: config keys, GitHub secrets, default role."""

    credential: str
    id_key: str
    secret_key: str
    default_role: str
    read_only: bool  # the read-only token: where it lives depends on the stack (see names.py)

    @property
    def previous_id_key(self) -> str:
        return _previous(self.id_key)

    @property
    def previous_secret_key(self) -> str:
        return _previous(self.secret_key)

    def github_environment(self, environment: str) -> str | None:
        """The GitHub environment holding this token's secrets, or None for repository secrets."""
        return names.readonly_environment(environment) if self.read_only else environment

    def github_secrets(self, environment: str) -> tuple[str, str]:
        if not self.read_only:
            return names.GITHUB_TOKEN_SECRETS  # type: ignore[return-value]
        return names.read_token_secrets(environment)

    def describe_github(self, environment: str) -> str:
        """Where GitHub keeps the token, in words: 'environment secrets A and B of ...'."""
        first, second = self.github_secrets(environment)
        where = self.github_environment(environment)
        if where is None:
            return f"repository secrets {first} and {second}"
        return f"environment secrets {first} and {second} of environment '{where}'"

    def state_resource_names(self, environment: str) -> tuple[str, ...]:
        scope = self.github_environment(environment) or environment
        return tuple(
            names.github_secret_resource(scope, n) for n in self.github_secrets(environment)
        )


def _previous(key: str) -> str:
    """`rentagpu:modalTokenId` -> `rentagpu-rotation:previousModalTokenId`."""
    short = key.split(":", 1)[1]
    return f"{ROTATION_NAMESPACE}:previous{short[0].upper()}{short[1:]}"


MODAL_TOKEN = TokenSlot(
    "modal-token",
    full_key("modalTokenId"),
    full_key("modalTokenSecret"),
    "contributor",
    read_only=False,
)
MODAL_READ_TOKEN = TokenSlot(
    "modal-read-token",
    full_key("modalReadTokenId"),
    full_key("modalReadTokenSecret"),
    "viewer",
    read_only=True,
)
TOKEN_SLOTS = {slot.credential: slot for slot in (MODAL_TOKEN, MODAL_READ_TOKEN)}


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
    """A new service user and its token, made with the operator's token (MODAL_TOKEN_*)."""

    async def operation(api: ModalApi) -> ModalToken:
        from modal_proto import api_pb2

        reply = await api.call("ServiceUserCreate", api_pb2.ServiceUserCreateRequest(name=name))
        return ModalToken(SecretStr(reply.token_id), SecretStr(reply.token_secret))

    try:
        return run_modal(f"create Modal service user '{name}'", operation)
    except ModalCallError as error:
        if error.failure is Failure.ALREADY_EXISTS:
            suggestion = f"rentagpu-ci-{datetime.date.today():%Y-%m-%d}"
            raise RotationError(
                f"Modal service user '{name}' already exists and its token cannot be shown "
                f"again; pick a new name (e.g. --create-service-user {suggestion})"
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
