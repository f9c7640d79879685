"""Secret values never leave the secret channel: not in plain outputs, logs, errors or state.

Every value here is generated at runtime ("planted") and then searched for wherever a leak would
end up: the non-secret outputs, every log record (the SDK's included) and stdout/stderr, the
exception a user sees with its traceback, and the provider as Pulumi pickles it into state.
"""

from __future__ import annotations

import base64
import json
import traceback

import dill
import pulumi
import pytest
from grpclib import Status
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc

from infra.core.errors import ModalHookError
from infra.modal_hook.environment import ModalEnvironmentProvider
from infra.modal_hook.secret import ModalSecret, ModalSecretArgs, ModalSecretProvider
from tests.modal_hook.support import FAST, checked, planted, runtime_secret


def _plain_outputs(outs: dict) -> str:
    return json.dumps({k: v for k, v in outs.items() if k != "values"}, sort_keys=True)


def test_values_stay_out_of_plain_outputs_and_logs(modal_env, secret_provider, all_logs, capfd):
    modal_env.state.add_environment("prod", restricted=True)
    first = {"AWS_ACCESS_KEY_ID": planted("key-id"), "AWS_SECRET_ACCESS_KEY": planted("key")}
    second = {**first, "AWS_SECRET_ACCESS_KEY": planted("rotated")}
    leaks = [*first.values(), *second.values()]

    inputs = checked(secret_provider, runtime_secret("prod", first))
    created = secret_provider.create(inputs)
    read = secret_provider.read(created.id, created.outs)
    news = checked(secret_provider, runtime_secret("prod", second))
    secret_provider.diff(created.id, read.outs, news)
    updated = secret_provider.update(created.id, read.outs, news)
    reread = secret_provider.read(created.id, updated.outs)
    modal_env.inject("SecretGetOrCreate", Status.UNAVAILABLE, times=1)  # a retry gets logged
    secret_provider.delete(created.id, reread.outs)

    assert modal_env.state.secret_values("prod", "rentagpu-runtime") is None
    assert any("retrying" in r.getMessage() for r in all_logs.records)  # logs were captured
    for outs in (created.outs, read.outs, updated.outs, reread.outs):
        plain = _plain_outputs(outs)
        assert not [v for v in leaks if v in plain]
    out, err = capfd.readouterr()
    for value in leaks:
        assert value not in all_logs.text
        assert value not in out + err


def test_values_stay_out_of_errors(fake_modal, monkeypatch, secret_provider):
    fake_modal.state.add_environment("prod", restricted=True)
    fake_modal.state.set_role("prod", "rentagpu-ci", "viewer")
    fake_modal.use(monkeypatch, token=fake_modal.server.add_token("rentagpu-ci"))
    values = {"TOKEN": planted("token"), "OTHER": planted("other")}

    with pytest.raises(ModalHookError) as caught:
        secret_provider.create(checked(secret_provider, runtime_secret("prod", values)))

    rendered = "".join(traceback.format_exception(caught.value))
    assert "permission" in str(caught.value).lower()
    assert not [v for v in values.values() if v in rendered]


def test_the_pickled_provider_holds_no_secret(modal_env, monkeypatch):
    token_secret = modal_env.token_secret
    values = {"TOKEN": planted("token")}
    modal_env.state.add_environment("prod")
    secret_provider = ModalSecretProvider(FAST)
    environment_provider = ModalEnvironmentProvider(FAST)
    outs = secret_provider.create(checked(secret_provider, runtime_secret("prod", values))).outs
    secret_provider.read("prod/rentagpu-runtime", outs)

    for provider in (secret_provider, environment_provider):
        pickled = base64.b64decode(serialize_provider(provider))  # exactly what goes into state
        assert values["TOKEN"].encode() not in pickled
        assert token_secret.encode() not in pickled
        assert modal_env.token_id.encode() not in pickled
        # Pickled by reference to an importable class, not by value with its globals.
        assert type(provider).__module__.encode() in pickled
        assert len(pickled) < 1024, len(pickled)

    # What Pulumi unpickles later still works, with credentials taken from the environment.
    revived = dill.loads(base64.b64decode(serialize_provider(secret_provider)))  # noqa: S301
    assert revived.read("prod/rentagpu-runtime", outs).outs["keys"] == ["TOKEN"]


class _RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        return args.name + "-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def test_the_resource_marks_values_secret_and_keys_plain():
    mocks = _RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="rentagpu", stack="dev", preview=False)
    value = planted("value")

    secret = ModalSecret(
        "runtime",
        ModalSecretArgs(
            environment_name="dev",
            secret_name="rentagpu-runtime",
            values={"TOKEN": value},  # handed over as a plain string on purpose
            required_keys=["TOKEN"],
        ),
    )

    def check(resolved):
        values_secret, name_secret, keys_secret = resolved
        assert values_secret is True
        assert name_secret is False and keys_secret is False
        [registered] = mocks.resources  # registered by the time outputs resolve
        assert registered.typ == "pulumi-python:dynamic/rentagpu:ModalSecret"
        # Both reach the engine wrapped as secrets, which is what encrypts them in state.
        assert rpc.is_rpc_secret(registered.inputs["values"])
        assert rpc.is_rpc_secret(registered.inputs["__provider"])
        provider_blob = rpc.unwrap_rpc_secret(registered.inputs["__provider"])
        assert value.encode() not in base64.b64decode(provider_blob)
        plain_inputs = {k: v for k, v in registered.inputs.items() if k != "values"}
        assert value not in json.dumps(plain_inputs, default=str)

    return pulumi.Output.all(
        pulumi.Output.is_secret(secret.values),
        pulumi.Output.is_secret(secret.secret_name),
        pulumi.Output.is_secret(secret.keys),
    ).apply(check)


test_the_resource_marks_values_secret_and_keys_plain = pulumi.runtime.test(
    test_the_resource_marks_values_secret_and_keys_plain
)
