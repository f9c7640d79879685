"""`ModalSecret`: a named Modal secret in the stack's environment, built from config and outputs.

What the provider guarantees, and why:
- `check` refuses values that could never work (bad key names, empty secret) and names every
  `required_keys` entry that is missing, before anything reaches Modal.
- `create` and `update` write the whole secret in one SecretGetOrCreate with
  CREATE_OVERWRITE_IF_EXISTS (what `modal secret create --force` sends). There is no
  delete-then-create, so apps never see a moment without the secret, and a failed update leaves
  the old values in place. `create` takes over a secret of the same name that the manual guide
  made, rather than failing on it.
- Values are secret inputs and the `values` output is secret; `keys` holds only key names.
  Values never appear in a log line or an error message (errors are redacted with `[secret]`).
- `read` (`pulumi refresh`) reports a deleted secret (or environment) as gone and a changed key
  set as drift. Modal never returns secret values, so a value changed by hand is invisible to
  refresh; `pulumi up` rewrites values only when the stack's inputs change.
- `delete` removes the secret; a secret that is already gone is not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from infra.core.errors import Failure, ModalCallError
from infra.core.resource_types import MODAL_MODULE, MODAL_SECRET_NAME
from infra.modal_hook import validation
from infra.modal_hook.client import ModalApi, run_modal
from infra.modal_hook.schema import Field, Schema, SchemaProvider, differs, identity_from

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModalSecretArgs:
    environment_name: pulumi.Input[str]
    secret_name: pulumi.Input[str]
    values: pulumi.Input[Mapping[str, pulumi.Input[str]]]
    required_keys: Sequence[str] = ()


SCHEMA = Schema(
    (
        # A secret under another name or in another environment is a new secret; Pulumi creates
        # it before deleting the old one, so the app's secret exists throughout.
        Field(
            "environment_name",
            check=lambda p, v, _: validation.environment_name(p, v),
            change="replace",
        ),
        Field(
            "secret_name",
            check=lambda p, v, _: validation.object_name(p, v, "secret"),
            change="replace",
        ),
        Field(
            "values",
            check=lambda p, v, news: validation.secret_values(p, v, news.get("required_keys")),
            normalise=dict,
            secret=True,
        ),
        Field(
            "required_keys",
            check=lambda p, v, _: validation.required_keys(p, v),
            default=[],
            normalise=lambda keys: sorted(set(keys)),
        ),
        Field("keys", output=True),
        Field("secret_id", output=True),
    )
)


@dataclass(frozen=True)
class LiveSecret:
    id: str
    keys: tuple[str, ...]


class ModalSecretProvider(SchemaProvider):
    """Dynamic provider for `ModalSecret`."""

    schema = SCHEMA

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Keys read back by refresh that differ from the values' keys are drift to repair.
        keys_drifted = differs(olds.get("keys"), _key_names(news.get("values")))
        return SCHEMA.diff(olds, news, also_changed=keys_drifted)

    def create(self, props: dict[str, Any]) -> CreateResult:
        environment, name, values = _identity(props)
        live = self._write(environment, name, values, verb="create")
        return CreateResult(id_=f"{environment}/{name}", outs=_outputs(props, live))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        environment, name = identity_from(id_, props, ("environment_name", "secret_name"))

        async def operation(api: ModalApi) -> LiveSecret | None:
            return await lookup_secret(api, environment, name)

        action = f"read Modal secret '{name}' in environment '{environment}'"
        live = run_modal(action, operation, policy=self.policy, secrets=_secret_strings(props))
        if live is None:
            log.warning("Modal secret %r in %r no longer exists", name, environment)
            return ReadResult(id_="", outs={})
        # Modal never returns values, so the stored ones stay; keys and id are what Modal reports.
        outs = {
            **_outputs(props, live),
            "environment_name": environment,
            "secret_name": name,
            "keys": list(live.keys),
        }
        return ReadResult(id_=id_, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        environment, name, values = _identity(news)
        if olds.get("values") == values and olds.get("keys") == _key_names(values):
            # Only required_keys changed: the hook's own check, nothing to send to Modal.
            return UpdateResult(_outputs(news, LiveSecret(olds.get("secret_id", ""), ())))
        live = self._write(environment, name, values, verb="update")
        return UpdateResult(_outputs(news, live))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        environment, name = identity_from(id_, props, ("environment_name", "secret_name"))

        async def operation(api: ModalApi) -> None:
            from modal_proto import api_pb2

            live = await lookup_secret(api, environment, name)
            if live is None:
                log.info("Modal secret %r in %r is already gone", name, environment)
                return
            await api.call_or_none("SecretDelete", api_pb2.SecretDeleteRequest(secret_id=live.id))

        action = f"delete Modal secret '{name}' in environment '{environment}'"
        run_modal(action, operation, policy=self.policy, secrets=_secret_strings(props))

    def _write(self, environment: str, name: str, values: dict[str, str], verb: str) -> LiveSecret:
        """Create or overwrite the whole secret in one call (`modal secret create --force`)."""

        async def operation(api: ModalApi) -> LiveSecret:
            from modal_proto import api_pb2

            log.info(
                "Modal secret %r in %r: writing keys %s",
                name,
                environment,
                ", ".join(sorted(values)),
            )
            request = api_pb2.SecretGetOrCreateRequest(
                deployment_name=name,
                environment_name=environment,
                object_creation_type=api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS,
                env_dict=values,
            )
            try:
                reply = await api.call("SecretGetOrCreate", request)
            except ModalCallError as exc:
                if exc.failure is Failure.NOT_FOUND:
                    raise api.error(
                        Failure.NOT_FOUND,
                        f"environment '{environment}' does not exist. Create it first: the "
                        "ModalEnvironment resource must come before its secrets (pass its "
                        "environment_name output into the secret).",
                        rpc="SecretGetOrCreate",
                    ) from None
                raise
            return LiveSecret(reply.secret_id, tuple(sorted(values)))

        action = f"{verb} Modal secret '{name}' in environment '{environment}'"
        return run_modal(action, operation, policy=self.policy, secrets=values.values())


class ModalSecret(pulumi.dynamic.Resource, module=MODAL_MODULE, name=MODAL_SECRET_NAME):
    """A named Modal secret (see the module docstring for what is guaranteed)."""

    environment_name: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    keys: pulumi.Output[list[str]]
    values: pulumi.Output[dict[str, str]]
    required_keys: pulumi.Output[list[str]]
    secret_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        args: ModalSecretArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        provider: ModalSecretProvider | None = None,
    ) -> None:
        # `values` is secret as a whole, whatever the caller marked: every value is a credential.
        props = SCHEMA.props(
            {
                "environment_name": args.environment_name,
                "secret_name": args.secret_name,
                "values": args.values,
                "required_keys": sorted(set(args.required_keys)),
            }
        )
        super().__init__(
            provider or ModalSecretProvider(), resource_name, props, SCHEMA.options(opts)
        )


# Helpers shared by the provider methods.


def _key_names(values: Any) -> Any:
    return sorted(values) if isinstance(values, Mapping) else values


def _identity(props: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    return props["environment_name"], props["secret_name"], dict(props["values"])


def _secret_strings(props: Mapping[str, Any]) -> list[str]:
    values = props.get("values")
    return [v for v in values.values() if isinstance(v, str)] if isinstance(values, Mapping) else []


def _outputs(props: Mapping[str, Any], live: LiveSecret) -> dict[str, Any]:
    values = dict(props.get("values") or {})
    return {
        "environment_name": props.get("environment_name"),
        "secret_name": props.get("secret_name"),
        "keys": sorted(values),
        "values": values,
        "required_keys": list(props.get("required_keys") or []),
        "secret_id": live.id,
    }


async def lookup_secret(api: ModalApi, environment: str, name: str) -> LiveSecret | None:
    """The secret's id and key names, or None when it (or its environment) does not exist.

    A lookup is SecretGetOrCreate with no creation type, what `modal.Secret.from_name` sends.
    """
    from modal_proto import api_pb2

    request = api_pb2.SecretGetOrCreateRequest(deployment_name=name, environment_name=environment)
    reply = await api.call_or_none("SecretGetOrCreate", request)
    if reply is None:
        return None
    return LiveSecret(reply.secret_id, tuple(sorted(reply.metadata.keys)))
