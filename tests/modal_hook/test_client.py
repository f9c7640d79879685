"""The hook's Modal connection: credentials, time bounds, retries and the errors users see."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import traceback

import pytest
from grpclib import Status

from infra.core.errors import Failure, ModalCallError, ModalHookError
from infra.modal_hook.client import (
    DEFAULT_POLICY,
    DEFAULT_SERVER_URL,
    CallPolicy,
    credentials_from_env,
    redact,
)
from infra.modal_hook.environment import ModalEnvironmentProvider
from infra.modal_hook.host import Headline
from tests.modal_hook.support import FAST, checked, dev_environment, planted, runtime_secret


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_token_variables_are_named_before_any_call(monkeypatch, environment_provider):
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    with pytest.raises(ModalCallError) as caught:
        environment_provider.read("dev", dev_environment())
    assert caught.value.failure is Failure.AUTH
    assert "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are not set" in str(caught.value)


def test_credentials_come_from_the_environment_at_call_time():
    found = credentials_from_env(
        {"MODAL_TOKEN_ID": "id-x", "MODAL_TOKEN_SECRET": "secret-x", "MODAL_SERVER_URL": ""}
    )
    assert found.server_url == "https://api.modal.com,https://api.modal2.com"
    assert found.token_secret.reveal() == "secret-x"
    assert "secret-x" not in repr(found)


def test_the_default_server_is_the_sdks():
    import modal.config

    assert DEFAULT_SERVER_URL == modal.config.DEFAULT_SERVER_URL


def test_a_bad_token_gives_the_auth_message(shared_modal, monkeypatch, environment_provider):
    bad_secret = "as-" + planted("wrong")
    shared_modal.use(monkeypatch, token=(shared_modal.token_id, bad_secret))
    with pytest.raises(ModalCallError) as caught:
        environment_provider.create(checked(environment_provider, dev_environment()))
    message = str(caught.value)
    assert caught.value.failure is Failure.AUTH
    assert "Modal rejected the token in MODAL_TOKEN_ID/MODAL_TOKEN_SECRET" in message
    assert "modal token info" in message
    assert bad_secret not in message
    assert [c.status for c in shared_modal.calls] == ["UNAUTHENTICATED"]  # not retried


def test_an_unreachable_server_fails_within_the_connect_bound(monkeypatch):
    url = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MODAL_SERVER_URL", url)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-" + planted("id"))
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-" + planted("secret"))
    provider = ModalEnvironmentProvider(CallPolicy(connect_timeout_s=1.5, deadline_s=10))

    started = time.monotonic()
    with pytest.raises(ModalCallError) as caught:
        provider.read("dev", dev_environment())
    elapsed = time.monotonic() - started

    assert caught.value.failure is Failure.UNREACHABLE
    assert f"no connection to the Modal server at {url} within 1.5 s" in str(caught.value)
    assert "MODAL_SERVER_URL" in str(caught.value)
    # bounded, with room for a loaded runner: the SDK alone would keep retrying for about a minute
    assert elapsed < 15, elapsed


def test_the_default_bounds_beat_the_sdks_minute_of_retries():
    assert DEFAULT_POLICY.connect_timeout_s <= 15
    assert DEFAULT_POLICY.deadline_s <= 60


def test_a_hung_rpc_times_out_after_bounded_retries(modal_env):
    modal_env.hang_next("EnvironmentList", times=None)
    policy = CallPolicy(attempt_timeout_s=0.3, max_attempts=2, backoff_initial_s=0.01)
    started = time.monotonic()
    with pytest.raises(ModalCallError) as caught:
        ModalEnvironmentProvider(policy).read("dev", dev_environment())
    assert caught.value.failure is Failure.TIMEOUT
    assert "did not answer EnvironmentList in time 2 times" in str(caught.value)
    assert [c.status for c in modal_env.calls] == ["HANG", "HANG"]
    assert time.monotonic() - started < 10  # bounded (generous for a loaded runner)


def test_the_whole_operation_has_a_deadline(modal_env):
    modal_env.hang_next("EnvironmentList", times=None)
    policy = CallPolicy(attempt_timeout_s=5, max_attempts=10, deadline_s=0.8)
    started = time.monotonic()
    with pytest.raises(ModalCallError, match="did not finish within 0.8 s"):
        ModalEnvironmentProvider(policy).read("dev", dev_environment())
    assert time.monotonic() - started < 10  # bounded (generous for a loaded runner)


def test_permission_denied_in_a_restricted_environment_says_how_to_fix(
    fake_modal, monkeypatch, secret_provider
):
    fake_modal.state.add_environment("prod", restricted=True)
    fake_modal.state.set_role("prod", "rentagpu-ci", "viewer")
    fake_modal.use(monkeypatch, token=fake_modal.server.add_token("rentagpu-ci"))

    with pytest.raises(ModalCallError) as caught:
        secret_provider.create(checked(secret_provider, runtime_secret("prod", {"K": "value"})))

    message = str(caught.value)
    assert caught.value.failure is Failure.PERMISSION_DENIED
    assert "has role 'viewer' in restricted environment 'prod'" in message
    assert "--role contributor --service-user" in message
    assert fake_modal.state.secret_values("prod", "rentagpu-runtime") is None


def test_an_unimplemented_rpc_points_at_the_pinned_version(modal_env, environment_provider):
    modal_env.inject("EnvironmentList", Status.UNIMPLEMENTED)
    with pytest.raises(ModalCallError) as caught:
        environment_provider.read("dev", dev_environment())
    assert caught.value.failure is Failure.UNIMPLEMENTED
    assert "modal==1.6.4" in str(caught.value)


@pytest.mark.parametrize(("status", "answered"), [(404, "HTTP 404"), (200, "something not gRPC")])
def test_a_url_that_is_not_modal_is_named_as_such(
    not_modal_factory, monkeypatch, environment_provider, status, answered
):
    """A wrong MODAL_SERVER_URL (a web server, a proxy) answers HTTP, not gRPC; grpclib turns a 404
    into UNIMPLEMENTED, which must not read as a client/server version mismatch."""
    server = not_modal_factory(status)
    monkeypatch.setenv("MODAL_SERVER_URL", server.url)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-" + planted("id"))
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-" + planted("secret"))
    with pytest.raises(ModalCallError) as caught:
        environment_provider.read("dev", dev_environment())
    message = str(caught.value)
    assert f"MODAL_SERVER_URL={server.url} does not point at a Modal server" in message
    assert f"answered EnvironmentList with {answered}" in message
    assert "client version" not in message
    assert server.requests == ["/modal.client.ModalClient/EnvironmentList"]  # not retried


def test_server_text_is_redacted_and_not_chained(modal_env, secret_provider):
    value = planted("echoed")
    modal_env.state.add_environment("prod")
    # A server that echoes a value back in its error must not get it into our message.
    modal_env.inject("SecretGetOrCreate", Status.INVALID_ARGUMENT, message=f"bad value {value}")
    with pytest.raises(ModalHookError) as caught:
        secret_provider.create(checked(secret_provider, runtime_secret("prod", {"K": value})))
    rendered = "".join(traceback.format_exception(caught.value))
    assert "bad value [secret]" in str(caught.value)
    assert value not in rendered
    # The only exception chained to ours is its own headline (infra/modal_hook/host.py), never the
    # SDK's exception, which carries the server's text.
    assert isinstance(caught.value.__cause__, Headline)
    assert caught.value.__cause__.__traceback__ is None
    assert str(caught.value.__cause__) == str(caught.value)
    assert caught.value.__context__ is None


def test_redact_replaces_longest_values_first_and_keeps_short_ones():
    assert redact("a abcdef abcd", ["abcd", "abcdef", "a"]) == "a [secret] [secret]"


def test_providers_work_when_called_under_a_running_event_loop(modal_env, environment_provider):
    async def inside_a_loop():
        return environment_provider.create(checked(environment_provider, dev_environment()))

    assert asyncio.run(inside_a_loop()).id == "dev"


def test_providers_leave_the_callers_event_loop_alone(modal_env, environment_provider):
    # Checked on a thread of its own, so this test does not change the main thread's loop either.
    seen = {}

    def like_the_pulumi_runtime():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # as the Pulumi runtime does on the thread of a program
        try:
            environment_provider.create(checked(environment_provider, dev_environment()))
            seen["same loop"] = asyncio.get_event_loop() is loop
        finally:
            loop.close()

    thread = threading.Thread(target=like_the_pulumi_runtime)
    thread.start()
    thread.join()
    assert seen == {"same loop": True}


def test_call_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="max_attempts"):
        CallPolicy(max_attempts=0)
    assert [FAST.backoff(n) for n in (1, 2, 3, 4)] == [0.01, 0.02, 0.04, 0.05]


def test_importing_the_hook_does_not_import_modal():
    code = (
        "import sys, infra.modal_hook; "
        "loaded = [m for m in ('modal', 'modal_proto', 'grpclib') if m in sys.modules]; "
        "print(','.join(loaded) or 'none')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "none"
