"""`ModalEnvironment`: the stack's Modal environment, restricted in prod, with explicit roles.

What the provider guarantees, and why:
- `create` adopts an environment that already exists under the name (the guide created them by
  hand), but refuses one whose restricted flag differs: Modal's SDK cannot change it, and a prod
  environment that silently stayed unrestricted would defeat the point.
- Roles are set explicitly for every configured service user, even when the inherited role
  already matches, so a change of the environment's default cannot widen or cut CI's access.
  Service users left out of the config are not touched; to revoke, configure 'no-access'.
- `read` (what `pulumi refresh` calls) reports a deleted environment as gone and a changed or
  merely inherited role as drift; the next `pulumi up` sets it back.
- `delete` refuses to delete an environment that still holds live apps or secrets unless
  `allow_deletion` is true: deleting a Modal environment deletes everything inside it.

Inputs and outputs use the same snake_case names; outputs add `environment_id`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.core.config import StackConfig
from infra.core.errors import Failure, ModalCallError, ModalHookError
from infra.core.resource_types import MODAL_ENVIRONMENT_NAME, MODAL_MODULE
from infra.modal_hook import validation
from infra.modal_hook.client import ModalApi, run_modal
from infra.modal_hook.schema import Field, Schema, SchemaProvider

log = logging.getLogger(__name__)

# Shown for a configured service user whose role is inherited rather than assigned, and for one
# that no longer exists: both differ from any configured role, so refresh reports them as drift.
INHERITED_SUFFIX = " (inherited)"
NOT_IN_WORKSPACE = "(not in workspace)"

SCHEMA = Schema(
    (
        # A new name is a new environment.
        Field(
            "environment_name",
            check=lambda p, v, _: validation.environment_name(p, v),
            change="replace",
        ),
        Field("restricted", check=lambda p, v, _: validation.boolean(p, v), default=False),
        Field(
            "service_user_roles",
            check=lambda p, v, _: validation.service_user_roles(p, v),
            default={},
            normalise=lambda roles: dict(sorted(roles.items())),
        ),
        # The hook's own setting: recorded in state, never sent to Modal.
        Field(
            "allow_deletion",
            check=lambda p, v, _: validation.boolean(p, v),
            default=False,
            change="none",
        ),
        Field("environment_id", output=True),
    )
)


@dataclass(frozen=True)
class ModalEnvironmentArgs:
    environment_name: pulumi.Input[str]
    restricted: pulumi.Input[bool] = False
    service_user_roles: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    allow_deletion: pulumi.Input[bool] = False

    @classmethod
    def from_config(cls, config: StackConfig) -> ModalEnvironmentArgs:
        """The stack's environment as its config describes it (prod is restricted)."""
        return cls(
            environment_name=config.environment,
            restricted=config.modal.restricted,
            service_user_roles=dict(config.modal.service_user_roles),
            allow_deletion=config.modal.allow_environment_deletion,
        )


@dataclass(frozen=True)
class _LiveEnvironment:
    id: str
    name: str
    restricted: bool


@dataclass(frozen=True)
class _LiveRole:
    service_user_id: str
    role: str
    assigned: bool


class ModalEnvironmentProvider(SchemaProvider):
    """Dynamic provider for `ModalEnvironment`."""

    schema = SCHEMA

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = props["environment_name"]
        restricted = bool(props.get("restricted", False))
        roles = dict(props.get("service_user_roles") or {})

        async def operation(api: ModalApi) -> dict[str, Any]:
            from modal_proto import api_pb2

            env = await find_environment(api, name)
            if env is None:
                log.info("creating Modal environment %r (restricted=%s)", name, restricted)
                request = api_pb2.EnvironmentCreateRequest(name=name, is_managed=restricted)
                try:
                    await api.call("EnvironmentCreate", request)
                except ModalCallError as exc:
                    if exc.failure is not Failure.ALREADY_EXISTS:
                        raise  # ALREADY_EXISTS: created meanwhile (or by our retried call)
                env = await find_environment(api, name)
                if env is None:
                    raise api.error(Failure.OTHER, "Modal accepted it but does not list it.")
            else:
                log.info("adopting existing Modal environment %r", name)
            _require_restricted(api, env, restricted)
            applied = await _apply_roles(api, env, roles)
            return _outputs(env, applied, props)

        outs = run_modal(f"create Modal environment '{name}'", operation, policy=self.policy)
        return CreateResult(id_=name, outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        name = props.get("environment_name") or id_
        managed_users = sorted((props.get("service_user_roles") or {}).keys())

        async def operation(api: ModalApi) -> dict[str, Any] | None:
            env = await find_environment(api, name)
            if env is None:
                return None
            live = await _live_roles(api, env)
            observed = {user: _observed_role(live.get(user)) for user in managed_users}
            return _outputs(env, observed, props)

        outs = run_modal(f"read Modal environment '{name}'", operation, policy=self.policy)
        if outs is None:
            log.warning("Modal environment %r no longer exists", name)
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        name = news["environment_name"]
        restricted = bool(news.get("restricted", False))
        roles = dict(news.get("service_user_roles") or {})
        if not SCHEMA.changed(olds, news, "update"):
            # Only allow_deletion changed: that is the hook's own setting, nothing to send.
            return UpdateResult({**_stored_outputs(olds), "allow_deletion": news["allow_deletion"]})

        async def operation(api: ModalApi) -> dict[str, Any]:
            env = await find_environment(api, name)
            if env is None:
                raise api.error(
                    Failure.NOT_FOUND,
                    f"environment '{name}' no longer exists. Run `pulumi refresh` so Pulumi "
                    "notices, then `pulumi up` to create it again.",
                )
            _require_restricted(api, env, restricted)
            applied = await _apply_roles(api, env, roles)
            return _outputs(env, applied, news)

        outs = run_modal(f"update Modal environment '{name}'", operation, policy=self.policy)
        return UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        name = props.get("environment_name") or id_
        allowed = bool(props.get("allow_deletion", False))

        async def operation(api: ModalApi) -> None:
            from modal_proto import api_pb2

            env = await find_environment(api, name)
            if env is None:
                log.info("Modal environment %r is already gone", name)
                return
            apps = await _live_app_names(api, name)
            secrets = await _secret_names(api, name)
            if (apps or secrets) and not allowed:
                raise ModalHookError(_refusal(name, apps, secrets))
            log.warning("deleting Modal environment %r and everything in it", name)
            await api.call_or_none("EnvironmentDelete", api_pb2.EnvironmentDeleteRequest(name=name))

        run_modal(f"delete Modal environment '{name}'", operation, policy=self.policy)


class ModalEnvironment(pulumi.dynamic.Resource, module=MODAL_MODULE, name=MODAL_ENVIRONMENT_NAME):
    """The stack's Modal environment (see the module docstring for what is guaranteed)."""

    environment_name: pulumi.Output[str]
    environment_id: pulumi.Output[str]
    restricted: pulumi.Output[bool]
    service_user_roles: pulumi.Output[dict[str, str]]
    allow_deletion: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        args: ModalEnvironmentArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        provider: ModalEnvironmentProvider | None = None,
    ) -> None:
        props = SCHEMA.props(
            {
                "environment_name": args.environment_name,
                "restricted": args.restricted,
                "service_user_roles": args.service_user_roles,
                "allow_deletion": args.allow_deletion,
            }
        )
        super().__init__(
            provider or ModalEnvironmentProvider(), resource_name, props, SCHEMA.options(opts)
        )


# Steps shared by the provider methods.


def _outputs(env: _LiveEnvironment, roles: Mapping[str, str], props: Mapping[str, Any]):
    return {
        "environment_name": env.name,
        "environment_id": env.id,
        "restricted": env.restricted,
        "service_user_roles": dict(sorted(roles.items())),
        "allow_deletion": bool(props.get("allow_deletion", False)),
    }


def _stored_outputs(olds: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("environment_name", "environment_id", "restricted", "service_user_roles")
    return {key: olds.get(key) for key in keys}


async def find_environment(api: ModalApi, name: str) -> _LiveEnvironment | None:
    """The environment called `name` (its id, name and restricted flag), or None."""
    from google.protobuf import empty_pb2

    reply = await api.call("EnvironmentList", empty_pb2.Empty())
    for item in reply.items:
        if item.name == name:
            return _LiveEnvironment(item.environment_id, item.name, item.is_managed)
    return None


def _require_restricted(api: ModalApi, env: _LiveEnvironment, restricted: bool) -> None:
    if env.restricted == restricted:
        return
    actual = "restricted" if env.restricted else "not restricted"
    wanted = "restricted" if restricted else "unrestricted"
    raise api.error(
        Failure.INVALID,
        f"environment '{env.name}' exists and is {actual}, but this stack needs it {wanted}, "
        "and the Modal SDK cannot change that on an existing environment. Change it in the "
        f"Modal dashboard, or delete it (`modal environment delete {env.name}`, which deletes "
        "everything in it) so the hook can create it as configured.",
    )


async def _live_roles(api: ModalApi, env: _LiveEnvironment) -> dict[str, _LiveRole]:
    from modal_proto import api_pb2

    request = api_pb2.EnvironmentGetRolesRequest(environment_id=env.id)
    reply = await api.call("EnvironmentGetRoles", request)
    return {
        p.service_user_name: _LiveRole(p.service_user_id, p.role_str, p.has_role_assignment)
        for p in reply.principal_roles
        if p.service_user_id
    }


def _observed_role(live: _LiveRole | None) -> str:
    if live is None:
        return NOT_IN_WORKSPACE
    return live.role if live.assigned else live.role + INHERITED_SUFFIX


async def _apply_roles(
    api: ModalApi, env: _LiveEnvironment, wanted: Mapping[str, str]
) -> dict[str, str]:
    """Assign each wanted role that is not already assigned explicitly; return the wanted map."""
    from modal_proto import api_pb2

    if not wanted:
        return {}
    live = await _live_roles(api, env)
    missing = sorted(set(wanted) - set(live))
    if missing:
        raise api.error(
            Failure.NOT_FOUND,
            f"service user(s) {', '.join(missing)} do not exist in the workspace. Create them "
            "(`modal workspace service-users create NAME`) or remove them from the stack's "
            "modalServiceUserRoles.",
        )
    for user, role in sorted(wanted.items()):
        current = live[user]
        if current.assigned and current.role == role:
            continue
        log.info("Modal environment %r: setting %r to %s", env.name, user, role)
        request = api_pb2.EnvironmentRoleSetRequest(
            environment_id=env.id, service_user_id=current.service_user_id, role_str=role
        )
        await api.call("EnvironmentRoleSet", request)
    return dict(wanted)


async def _live_app_names(api: ModalApi, environment: str) -> list[str]:
    from modal_proto import api_pb2

    stopped = (api_pb2.APP_STATE_STOPPED, api_pb2.APP_STATE_DISABLED)
    reply = await api.call("AppList", api_pb2.AppListRequest(environment_name=environment))
    return sorted(app.name or app.app_id for app in reply.apps if app.state not in stopped)


async def _secret_names(api: ModalApi, environment: str) -> list[str]:
    from modal_proto import api_pb2

    # One page is enough to decide; the message names at most that many.
    page = api_pb2.ListPagination(max_objects=100, created_before=time.time())
    request = api_pb2.SecretListRequest(environment_name=environment, pagination=page)
    reply = await api.call("SecretList", request)
    return sorted(item.label for item in reply.items)


def _refusal(name: str, apps: list[str], secrets: list[str]) -> str:
    held = []
    if apps:
        held.append(f"{len(apps)} app(s) ({', '.join(apps[:5])})")
    if secrets:
        held.append(f"{len(secrets)} secret(s) ({', '.join(secrets[:5])})")
    return (
        f"Refusing to delete Modal environment '{name}': it still holds {' and '.join(held)}, "
        "and deleting an environment deletes everything in it. Remove them first, or allow "
        "it for this stack: `pulumi config set allowModalEnvironmentDeletion true`, then "
        "`pulumi up` (which records the permission in state), then run the delete again."
    )
