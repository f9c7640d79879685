"""`ModalCiToken`: the Modal token one kind of CI job uses, handed to GitHub sealed.

Each stack has two, one per purpose: `deploy` (role contributor in the stack's environment, for
CI's `pulumi up` in the stack's GitHub environment) and `read` (role viewer, for drift checks and
audits). Its token reaches GitHub only as a libsodium sealed box to the GitHub public key of where
the secret lives (`infra.core.secrets.seal`); the provider returns ids, dates and that ciphertext,
so no person sees the token and its plaintext is in neither stack config nor Pulumi state.

Two ways to get the token:
- minted (the default): `create` makes a service user `rentagpu-ci-ENV-PURPOSE-SERIAL` with
  `ServiceUserCreate(name, scoped=True, expires_in_seconds)` (modal_proto ServiceUserCreateRequest
  fields 1-3; `scoped` is set by hand, the SDK 1.6.4 never sets it), grants its one role in the
  stack's environment (`EnvironmentRoleSet`, as `modal workspace service-users set-role` does), and
  checks with the new token itself (`TokenInfoGet`) that it is that service user. If a step after
  the creation fails, the service user is deleted again: nothing is left half-made.
- adopted (the documented fallback, `rentagpu:modalTokenId`/`modalTokenSecret`): a token someone
  made. `TokenInfoGet` with it must name a service user, never a person (the guide: service users,
  not personal tokens), and that service user's roles must be exactly this one role in this one
  environment. The token then sits in stack config, which every reader of the stack can decrypt;
  `python -m infra access` says so.

What the provider guarantees besides:
- Rotation replaces: a new serial, purpose, role, environment, lifetime or GitHub key is a new
  resource, created (and its sealed token put into GitHub by the secrets that depend on it) before
  the old service user is deleted, so CI always holds a working token. A minted token in the last
  third of its lifetime is due: the next full `pulumi up` replaces it the same way.
- `read` (`pulumi refresh`) reports a deleted service user as gone and a changed role as drift.
- `delete` deletes a minted service user (already gone is fine) and leaves an adopted one alone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult

from infra.core import names
from infra.core.errors import Failure, ModalCallError, ModalHookError
from infra.core.resource_types import MODAL_CI_TOKEN_NAME, MODAL_MODULE
from infra.core.secrets import SecretStr, seal
from infra.modal_hook import validation
from infra.modal_hook.client import (
    SERVER_URL_VARIABLE,
    TOKEN_ID_VARIABLE,
    TOKEN_SECRET_VARIABLE,
    ModalApi,
    run_modal,
)
from infra.modal_hook.environment import find_environment
from infra.modal_hook.schema import Field, Schema, SchemaProvider

log = logging.getLogger(__name__)

DAY = 86_400
# A minted token is due for replacement once less than this share of its lifetime is left.
RENEW_WHEN_LEFT = 1 / 3

SCHEMA = Schema(
    (
        Field(
            "environment_name",
            check=lambda p, v, _: validation.environment_name(p, v),
            change="replace",
        ),
        Field(
            "role",
            check=lambda p, v, _: validation.choice(p, v, tuple(names.CI_TOKEN_ROLES.values())),
            change="replace",
        ),
        # Minted: the service user to create. Adopted: empty (the token says whose it is).
        Field("service_user_name", default="", change="replace"),
        Field(
            "lifetime_days",
            check=lambda p, v, _: validation.whole_number(p, v, 1, 365),
            normalise=int,
            change="replace",
        ),
        # Where the sealed token goes: GitHub's public key (base64) and its id.
        Field("public_key", check=lambda p, v, _: validation.text(p, v), change="replace"),
        Field("key_id", check=lambda p, v, _: validation.text(p, v), change="replace"),
        # The adopted token (fallback only); None when minted.
        Field("token_id", secret=True, change="replace"),
        Field("token_secret", secret=True, change="replace"),
        Field("service_user_id", output=True),
        Field("minted_token_id", output=True),
        Field("expires_at", output=True),  # epoch seconds; 0 for a token without expiry
        Field("sealed_token_id", output=True),
        Field("sealed_token_secret", output=True),
    )
)


@dataclass(frozen=True)
class ModalCiTokenArgs:
    environment_name: pulumi.Input[str]
    role: str
    lifetime_days: int
    public_key: pulumi.Input[str]
    key_id: pulumi.Input[str]
    service_user_name: str = ""  # minted
    token_id: pulumi.Input[str] | None = None  # adopted
    token_secret: pulumi.Input[str] | None = None  # adopted


@dataclass(frozen=True)
class _Identity:
    service_user_id: str
    service_user_name: str


def due(expires_at: Any, lifetime_days: Any, now: float) -> bool:
    """Whether a minted token has less than a third of its lifetime left (or is expired)."""
    if not isinstance(expires_at, int | float) or not expires_at:
        return False
    if not isinstance(lifetime_days, int | float) or lifetime_days <= 0:
        return False
    return expires_at - now < lifetime_days * DAY * RENEW_WHEN_LEFT


class ModalCiTokenProvider(SchemaProvider):
    """Dynamic provider for `ModalCiToken`."""

    schema = SCHEMA

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        result = SCHEMA.check(news)
        inputs = result.inputs
        adopted = [inputs.get("token_id"), inputs.get("token_secret")]
        if inputs.get("service_user_name"):
            problems = validation.object_name(
                "service_user_name", inputs["service_user_name"], "service user"
            )
            if any(v is not None for v in adopted):
                problems.append(("token_id", "a minted token takes no token_id/token_secret"))
        elif any(v is None for v in adopted):
            problems = [("service_user_name", "name the service user to mint, or adopt a token")]
        else:
            problems = []
        result.failures.extend(pulumi.dynamic.CheckFailure(p, r) for p, r in problems)
        return result

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        result = SCHEMA.diff(olds, news)
        minted = bool(olds.get("service_user_name"))
        if minted and due(olds.get("expires_at"), olds.get("lifetime_days"), time.time()):
            log.warning(
                "Modal service user %r: its token expires in less than a third of its lifetime; "
                "this update replaces it",
                olds.get("service_user_name"),
            )
            return DiffResult(
                changes=True,
                replaces=[*result.replaces, "lifetime_days"],
                stables=[],
                delete_before_replace=False,
            )
        return result

    def create(self, props: dict[str, Any]) -> CreateResult:
        if props.get("service_user_name"):
            outs = self._mint(props)
        else:
            outs = self._adopt(props)
        return CreateResult(id_=outs["service_user_id"], outs={**props, **outs})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        environment = props.get("environment_name", "")

        try:
            roles = run_modal(
                f"read CI's Modal service user {id_}",
                lambda api: _roles_of(api, id_),
                policy=self.policy,
            )
        except ModalCallError as error:
            if error.failure is not Failure.PERMISSION_DENIED:
                raise
            # Drift checks hold a viewer token, which may not list service users (Modal does
            # not document who may); the audit, with a manager's view, covers them then.
            log.warning("cannot list Modal service users with this token; %s not checked", id_)
            return ReadResult(id_=id_, outs=props)
        if roles is None:
            log.warning("Modal service user %s no longer exists", id_)
            return ReadResult(id_="", outs={})
        if roles != {environment: props.get("role")}:
            # Drift: the role it holds here, or another environment it was given.
            log.warning("Modal service user %s holds roles %s", id_, sorted(roles.items()))
            return ReadResult(id_=id_, outs={**props, "role": _roles_text(roles)})
        return ReadResult(id_=id_, outs=props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        name = props.get("service_user_name")
        if not name:
            log.info("the adopted Modal token of %s stays: revoke it in Modal", id_)
            return

        async def operation(api: ModalApi) -> None:
            from modal_proto import api_pb2

            request = api_pb2.ServiceUserDeleteRequest(service_user_id=id_)
            if await api.call_or_none("ServiceUserDelete", request) is None:
                log.info("Modal service user %r was already gone", name)

        run_modal(f"delete CI's Modal service user '{name}'", operation, policy=self.policy)

    def _mint(self, props: dict[str, Any]) -> dict[str, Any]:
        name = props["service_user_name"]
        environment, role = props["environment_name"], props["role"]
        lifetime = props["lifetime_days"] * DAY

        async def create(api: ModalApi) -> tuple[str, str, SecretStr, float]:
            from modal_proto import api_pb2

            if await find_environment(api, environment) is None:
                raise api.error(
                    Failure.NOT_FOUND,
                    f"environment '{environment}' does not exist. The ModalEnvironment resource "
                    "must come first (pass its environment_name output into the token).",
                )
            request = api_pb2.ServiceUserCreateRequest(
                name=name, scoped=True, expires_in_seconds=lifetime
            )
            reply = await api.call("ServiceUserCreate", request)
            expires = reply.expires_at.ToSeconds() if reply.HasField("expires_at") else 0
            return reply.service_user_id, reply.token_id, SecretStr(reply.token_secret), expires

        user_id, token_id, token_secret, expires = run_modal(
            f"create CI's Modal service user '{name}'", create, policy=self.policy
        )
        try:
            self._grant(user_id, name, environment, role)
            identity = _identity_of(token_id, token_secret, self.policy)
            if identity.service_user_id != user_id:
                raise ModalHookError(
                    f"the token Modal returned for service user '{name}' identifies as "
                    f"'{identity.service_user_name}'; nothing was handed to GitHub"
                )
        except Exception:
            self.delete(user_id, props)  # nothing half-made: no service user without its role
            raise
        log.info("Modal service user %r: %s in %r, token %s", name, role, environment, token_id)
        return _sealed(props, user_id, token_id, token_secret, expires)

    def _adopt(self, props: dict[str, Any]) -> dict[str, Any]:
        token_id, token_secret = props["token_id"], SecretStr(props["token_secret"])
        environment, role = props["environment_name"], props["role"]
        identity = _identity_of(token_id, token_secret, self.policy)

        roles = run_modal(
            f"read the roles of service user '{identity.service_user_name}'",
            lambda api: _roles_of(api, identity.service_user_id),
            policy=self.policy,
        )
        if roles != {environment: role}:
            raise ModalHookError(
                f"rentagpu:modalTokenId belongs to service user '{identity.service_user_name}', "
                f"which holds {_roles_text(roles or {}) or 'no role'}; CI's token must "
                f"hold exactly '{role}' in '{environment}' and nothing elsewhere, or a credential "
                "of one stack reaches another. Give it that role alone, or leave "
                "modalTokenId/modalTokenSecret unset so the program mints one"
            )
        return _sealed(props, identity.service_user_id, token_id, token_secret, 0)

    def _grant(self, user_id: str, name: str, environment: str, role: str) -> None:
        async def operation(api: ModalApi) -> None:
            from modal_proto import api_pb2

            env = await find_environment(api, environment)
            if env is None:
                raise api.error(Failure.NOT_FOUND, f"environment '{environment}' is gone")
            request = api_pb2.EnvironmentRoleSetRequest(
                environment_id=env.id, service_user_id=user_id, role_str=role
            )
            await api.call("EnvironmentRoleSet", request)

        run_modal(f"give '{name}' role {role} in '{environment}'", operation, policy=self.policy)


async def _roles_of(api: ModalApi, service_user_id: str) -> dict[str, str] | None:
    """A service user's role in each environment (ServiceUserList), or None when it is gone."""
    from google.protobuf import empty_pb2

    reply = await api.call("ServiceUserList", empty_pb2.Empty())
    for user in reply.service_users:
        if user.service_user_id == service_user_id:
            return {r.environment_name: r.role_str for r in user.environment_roles}
    return None


def _identity_of(token_id: str, token_secret: SecretStr, policy: Any) -> _Identity:
    """Who Modal says a token belongs to; a person's token is refused."""

    async def operation(api: ModalApi) -> Any:
        from modal_proto import api_pb2

        return await api.call("TokenInfoGet", api_pb2.TokenInfoGetRequest())

    environ = {
        TOKEN_ID_VARIABLE: token_id,
        TOKEN_SECRET_VARIABLE: token_secret.reveal(),
        SERVER_URL_VARIABLE: os.environ.get(SERVER_URL_VARIABLE, ""),
    }
    reply = run_modal("identify a CI token", operation, policy=policy, environ=environ)
    if reply.WhichOneof("identity") != "service_user_identity":
        raise ModalHookError(
            "the Modal token for CI belongs to a person, not a service user: CI must never hold "
            "a personal token (it reaches everything its owner can, in every environment). "
            "Leave rentagpu:modalTokenId/modalTokenSecret unset so the program mints a service "
            "user, or set a service user's token"
        )
    who = reply.service_user_identity
    return _Identity(who.service_user_id, who.service_user_name)


def _sealed(
    props: Mapping[str, Any], user_id: str, token_id: str, secret: SecretStr, expires: float
) -> dict[str, Any]:
    key = props["public_key"]
    return {
        "service_user_id": user_id,
        "minted_token_id": token_id if props.get("service_user_name") else None,
        "expires_at": expires,
        "sealed_token_id": seal(key, SecretStr(token_id)),
        "sealed_token_secret": seal(key, secret),
    }


def _roles_text(roles: Mapping[str, str]) -> str:
    return ", ".join(f"{role} in '{env}'" for env, role in sorted(roles.items()))


class ModalCiToken(pulumi.dynamic.Resource, module=MODAL_MODULE, name=MODAL_CI_TOKEN_NAME):
    """CI's Modal token of one purpose in one environment (see the module docstring)."""

    environment_name: pulumi.Output[str]
    role: pulumi.Output[str]
    service_user_id: pulumi.Output[str]
    minted_token_id: pulumi.Output[str | None]
    expires_at: pulumi.Output[float]
    key_id: pulumi.Output[str]
    sealed_token_id: pulumi.Output[str]
    sealed_token_secret: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        args: ModalCiTokenArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        provider: ModalCiTokenProvider | None = None,
    ) -> None:
        adopted = args.token_id is not None
        props = SCHEMA.props(
            {
                "environment_name": args.environment_name,
                "role": args.role,
                "service_user_name": args.service_user_name,
                "lifetime_days": args.lifetime_days,
                "public_key": args.public_key,
                "key_id": args.key_id,
                "token_id": args.token_id if adopted else None,
                "token_secret": args.token_secret if adopted else None,
            }
        )
        super().__init__(
            provider or ModalCiTokenProvider(), resource_name, props, SCHEMA.options(opts)
        )
