"""Runtime secret values and the Modal token never leave their channel during a deploy: not in
logs (the SDK's included), the CLI's output, an error a user sees, the plain outputs, or the
provider as Pulumi pickles it into state. The values are planted at runtime and searched for."""

from __future__ import annotations

import base64
import json
import secrets
import traceback

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from infra.core.errors import DeployError
from tests.modal_hook.deploy_support import (
    checked,
    deployment,
    edit_source,
    revision,
    runtime_values,
    seed,
)


def test_planted_secrets_stay_out_of_logs_errors_outputs_and_state(
    deploy_modal_env, provider, source, monkeypatch, all_logs, capfd
):
    key_id = "AKIA" + secrets.token_hex(8).upper()
    key = "planted-key-" + secrets.token_hex(12)
    values = runtime_values(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=key)
    del values["AWS_ROLE_ARN"]
    secret_id = seed(deploy_modal_env.state, values)
    monkeypatch.setenv("GITHUB_SHA", revision())
    inputs = checked(provider, deployment(source, secret_id, values, auth_mode="access-key"))
    created = provider.create(inputs)
    read = provider.read(created.id, created.outs)

    # A release whose smoke job fails, so an error, a rollback and its logs happen too.
    edit_source(source, "payload.py", "# next release")
    news = checked(provider, deployment(source, secret_id, values, auth_mode="access-key"))
    deploy_modal_env.server.runtime.gpu_available = False
    with pytest.raises(DeployError) as caught:
        provider.update(created.id, read.outs, news)

    leaks = (key_id, key, deploy_modal_env.token_secret)
    # hpack logs every HTTP/2 header at DEBUG, the fake server's side included; the token travels
    # in headers by design, so for it only the records of the other loggers count.
    logged = all_logs.text
    logged_but_headers = "\n".join(
        r.getMessage() for r in all_logs.records if not r.name.startswith("hpack")
    )
    assert "AppRollback" in deploy_modal_env.rpc_names()  # the failure path really ran
    assert any("smoke job" in r.getMessage() for r in all_logs.records)  # logs were captured
    error = "".join(traceback.format_exception(caught.value))
    out, err = capfd.readouterr()
    outputs = json.dumps([created.outs, read.outs], sort_keys=True)
    pickled = base64.b64decode(serialize_provider(provider))  # exactly what goes into state
    for value in (key_id, key):
        assert value not in logged
    for value in leaks:
        assert value not in logged_but_headers
        assert value not in out + err
        assert value not in error
        assert value not in outputs
        assert value.encode() not in pickled
    assert deploy_modal_env.token_id.encode() not in pickled
    assert type(provider).__module__.encode() in pickled  # by reference, not by value


def test_the_plan_marks_the_secret_fingerprint_secret(renderings):
    for stack, rendering in renderings.items():
        deploy = rendering.one(
            "pulumi-python:dynamic/rentagpu:ModalAppDeployment", f"{stack}-app-deployment"
        )
        assert "secret_fingerprint" in deploy.secret_paths
        assert deploy.inputs["secret_fingerprint"] == "[secret]"
