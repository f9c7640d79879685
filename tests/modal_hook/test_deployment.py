"""`ModalAppDeploymentProvider` with the real `modal deploy` against the fake Modal server.

Each deploy is a `modal` CLI subprocess (about 4 s here), so every test deploys only as often as
what it checks needs.
"""

from __future__ import annotations

import pytest
from modal_proto import api_pb2

from infra.core.config import SecretStr
from infra.core.errors import DeployError
from infra.modal_hook.client import ModalCredentials
from infra.modal_hook.deploy_command import deploy_environment
from tests.modal_hook.deploy_support import (
    APP,
    checked,
    deployment,
    edit_source,
    live,
    revision,
    runtime_values,
    seed,
)


def test_a_first_deploy_goes_live_tagged_with_the_revision_and_passes_the_smoke_job(
    deploy_modal_env, provider, source, monkeypatch
):
    sha = revision()
    monkeypatch.setenv("GITHUB_SHA", sha)
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)

    created = provider.create(checked(provider, deployment(source, secret_id, values)))

    assert created.id == f"dev/{APP}"
    assert live(deploy_modal_env.state) == (1, sha)
    assert created.outs["version"] == 1
    assert created.outs["deployment_tag"] == sha
    assert created.outs["smoke_summary"] == "ready on NVIDIA H100 80GB HBM3 (torch-cuda)"
    # The smoke job ran once, on the deployed function, with the healthcheck payload.
    assert deploy_modal_env.server.runtime.payloads() == [{"job": "healthcheck"}]
    assert deploy_modal_env.unimplemented_calls() == []
    # Nothing drifted: refresh reads back what was deployed.
    read = provider.read(created.id, created.outs)
    assert read.id == created.id and read.outs == created.outs


def test_a_source_change_redeploys_and_a_new_revision_alone_does_not(
    deploy_modal_env, provider, source, monkeypatch
):
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    monkeypatch.setenv("GITHUB_SHA", revision())
    inputs = checked(provider, deployment(source, secret_id, values))
    created = provider.create(inputs)

    # A new commit that leaves modal_app/ alone: same inputs, nothing to do.
    monkeypatch.setenv("GITHUB_SHA", second := revision())
    assert provider.diff(created.id, created.outs, inputs).changes is False

    edit_source(source, "jobs/healthcheck.py", "# a change that ships")
    news = checked(provider, deployment(source, secret_id, values))
    diff = provider.diff(created.id, created.outs, news)
    assert diff.changes is True and diff.replaces == []
    updated = provider.update(created.id, created.outs, news)

    assert live(deploy_modal_env.state) == (2, second)
    assert updated.outs["version"] == 2 and updated.outs["deployment_tag"] == second
    shipped = deploy_modal_env.server.runtime.mounted_file("modal_app/jobs/healthcheck.py")
    assert shipped is not None and shipped.endswith(b"# a change that ships\n")


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("gpus", ["A100-80GB"]),
        ("auth_mode", "access-key"),
        ("secret_fingerprint", "0" * 64),
        ("runtime_secret_id", "st-recreatedsecret0000000"),
        ("modal_version", "1.7.0"),
    ],
)
def test_deploy_settings_and_secret_changes_redeploy(provider, source, change, value):
    inputs = checked(provider, deployment(source, "st-x", runtime_values()))
    outs = {**inputs, "app_id": "ap-x", "version": 3, "deployment_tag": "t"}
    news = {**inputs, change: value}
    assert provider.diff("dev/x", outs, news).changes is True
    renamed = provider.diff("dev/x", outs, {**inputs, "app_name": "renamed"})
    assert renamed.replaces == ["app_name"]


def test_a_deploy_refused_for_a_missing_secret_leaves_the_live_version_untouched(
    deploy_modal_env, provider, source, monkeypatch
):
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    monkeypatch.setenv("GITHUB_SHA", first := revision())
    created = provider.create(checked(provider, deployment(source, secret_id, values)))
    # Deleted by hand (as `modal secret delete` would), so the stack's state still records it.
    deploy_modal_env.state.secrets.pop(("dev", "rentagpu-runtime"))

    monkeypatch.setenv("GITHUB_SHA", revision())
    edit_source(source, "executor.py", "# next release")
    news = checked(provider, deployment(source, secret_id, values))
    with pytest.raises(DeployError) as caught:
        provider.update(created.id, created.outs, news)

    message = str(caught.value)
    assert "the runtime secret 'rentagpu-runtime' does not exist in environment 'dev'" in message
    assert f"Nothing was deployed: v1 (tag {first}) is still live, untouched." in message
    assert "`pulumi refresh`" in message and "`pulumi up`" in message
    assert live(deploy_modal_env.state) == (1, first)
    assert deploy_modal_env.server.runtime.payloads() == [{"job": "healthcheck"}]  # v1's only


def test_a_failing_smoke_job_rolls_back_to_the_previous_version_and_fails_the_update(
    deploy_modal_env, provider, source, monkeypatch
):
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    monkeypatch.setenv("GITHUB_SHA", first := revision())
    created = provider.create(checked(provider, deployment(source, secret_id, values)))

    # The next release lands on machines without a usable GPU: its healthcheck says so.
    monkeypatch.setenv("GITHUB_SHA", second := revision())
    edit_source(source, "jobs/matmul.py", "# next release")
    news = checked(provider, deployment(source, secret_id, values))
    deploy_modal_env.server.runtime.gpu_available = False
    with pytest.raises(DeployError) as caught:
        provider.update(created.id, created.outs, news)

    # What a user checks: the version from before is live again, as a rollback on top.
    assert live(deploy_modal_env.state) == (3, first)
    message = str(caught.value)
    assert f"deployed:  v2 (tag {second}), by this update" in message
    assert "it reported not ready: no CUDA GPU is visible: jobs run on the CPU" in message
    assert f"live now:  v3, a rollback to v1 (tag {first})" in message
    assert f"`modal app logs {APP} -e dev`" in message
    assert f"`modal app history {APP} -e dev`" in message
    # The rollback restored what the stack's state records: refresh sees no drift.
    restored = provider.read(created.id, created.outs)
    assert restored.outs["source_hash"] == created.outs["source_hash"]
    assert restored.outs["version"] == 3


def test_a_failing_first_deploy_is_stopped(deploy_modal_env, provider, source, monkeypatch):
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    monkeypatch.setenv("GITHUB_SHA", revision())
    deploy_modal_env.server.runtime.crash_next_calls(
        RuntimeError("CUDA driver initialization failed")
    )

    with pytest.raises(DeployError) as caught:
        provider.create(checked(provider, deployment(source, secret_id, values)))

    message = str(caught.value)
    # Modal's text for the error; with a CBOR call nothing pickled comes back to re-raise.
    assert "it raised RuntimeError('CUDA driver initialization failed') in its container" in message
    assert "live now:  nothing: this was the app's first deploy, so the app was stopped" in message
    assert live(deploy_modal_env.state) is None
    [app] = deploy_modal_env.state.apps_in("dev")
    assert (app.name, app.state) == (APP, api_pb2.APP_STATE_STOPPED)


def test_read_reports_another_live_version_and_a_stopped_app(
    deploy_modal_env, provider, source, monkeypatch
):
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    monkeypatch.setenv("GITHUB_SHA", revision())
    inputs = checked(provider, deployment(source, secret_id, values))
    created = provider.create(inputs)

    # Someone deploys by hand, from their own checkout (the test's working directory).
    deploy_modal_env.cli("deploy", "-m", "modal_app.app", "-e", "dev", "--tag", "by-hand")
    drifted = provider.read(created.id, created.outs)
    assert drifted.id == created.id
    assert (drifted.outs["version"], drifted.outs["deployment_tag"]) == (2, "by-hand")
    assert drifted.outs["source_hash"] != inputs["source_hash"]
    assert provider.diff(created.id, drifted.outs, inputs).changes is True  # `up` redeploys

    deploy_modal_env.cli("app", "stop", APP, "-e", "dev", "--yes")
    assert provider.read(created.id, drifted.outs).id == ""  # gone: refresh drops it


def test_the_deploy_subprocess_gets_the_modal_token_and_app_settings_and_no_other_credential():
    caller = {
        "PATH": "/usr/bin",
        "HTTPS_PROXY": "http://proxy:3128",
        "GITHUB_SHA": "a" * 40,
        "AWS_ACCESS_KEY_ID": "key-id",
        "AWS_SESSION_TOKEN": "session",
        "PULUMI_CONFIG_PASSPHRASE": "phrase",
        "GITHUB_TOKEN": "gh",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "oidc-request",
        "MODAL_PROFILE": "someone-elses",
        "MODAL_TOKEN_ID": "stale",
        # set while a rotation runs `pulumi up`, or simply present on a workstation
        "RENTAGPU_NEW_MODAL_TOKEN_SECRET": "fake-new-secret",
        "RENTAGPU_OLD_CREDENTIAL_SECRET": "fake-old-secret",
        "SSH_AUTH_SOCK": "agent.sock",
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys.json",
        "NPM_TOKEN": "npm",
        "LC_ALL": "C.UTF-8",
    }
    token = ModalCredentials("http://127.0.0.1:1", SecretStr("ak-id"), SecretStr("as-secret"))

    environ = deploy_environment(caller, token, APP, ["H100", "A100-80GB"], "oidc")

    # an allow-list: exactly the caller's paths, proxies and locale, plus what the deploy needs
    assert set(environ) == {
        "PATH",
        "HTTPS_PROXY",
        "LC_ALL",
        "MODAL_SERVER_URL",
        "MODAL_TOKEN_ID",
        "MODAL_TOKEN_SECRET",
        "MODAL_APP_NAME",
        "RENTAGPU_GPUS",
        "RENTAGPU_AWS_AUTH",
        "NO_COLOR",  # plain CLI output, quoted in error messages
        "TERM",
        "COLUMNS",
    }
    assert {k: environ[k] for k in ("PATH", "HTTPS_PROXY", "LC_ALL")} == {
        k: caller[k] for k in ("PATH", "HTTPS_PROXY", "LC_ALL")
    }
    assert environ["MODAL_TOKEN_ID"] == "ak-id" and environ["MODAL_TOKEN_SECRET"] == "as-secret"
    assert environ["MODAL_SERVER_URL"] == "http://127.0.0.1:1"
    assert environ["MODAL_APP_NAME"] == APP
    assert environ["RENTAGPU_GPUS"] == "H100,A100-80GB"
    assert environ["RENTAGPU_AWS_AUTH"] == "oidc"
    withheld = ("AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "PULUMI_CONFIG_PASSPHRASE")
    withheld += ("GITHUB_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "MODAL_PROFILE")
    assert not set(withheld) & set(environ)


def test_a_deploy_that_cannot_be_checked_afterwards_says_the_new_version_may_be_live_untested(
    deploy_modal_env, provider, source, monkeypatch
):
    from grpclib import Status

    sha = revision()
    monkeypatch.setenv("GITHUB_SHA", sha)
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    # Only the provider reads the history, and only after the deploy: the check fails, not it.
    deploy_modal_env.inject("AppDeploymentHistory", Status.PERMISSION_DENIED, times=1)

    with pytest.raises(DeployError) as caught:
        provider.create(checked(provider, deployment(source, secret_id, values)))

    message = str(caught.value)
    assert f"as tag {sha} finished, but checking what is live failed" in message
    assert "may be live without a smoke test" in message
    assert f"modal app history {APP}" in message
    assert live(deploy_modal_env.state) == (1, sha)  # it is live, exactly as the message warns
    assert deploy_modal_env.server.runtime.payloads() == []  # and untested
