"""The hook's providers under Pulumi's real dynamic provider host (`python -m pulumi.dynamic`),
driven over gRPC as the engine drives them (tests/fakes/provider_host.py).

Mocks hand a provider the wire string for an unknown value and call it in-process; the host hands
it `pulumi.output.Unknown` objects, answers a failure with the whole `traceback.format_exc()` text
and has no engine to log to. These tests fail unless the providers cope with all three.
"""

from __future__ import annotations

import pytest
from pulumi.runtime import rpc

from infra.modal_hook.deployment import ModalAppDeploymentProvider
from infra.modal_hook.environment import ModalEnvironmentProvider
from infra.modal_hook.secret import ModalSecretProvider
from tests.fakes.provider_host import HostError
from tests.modal_hook.support import FAST, dev_environment, runtime_secret

UNKNOWN = rpc.UNKNOWN  # what the engine sends for a value a preview cannot know


def first_preview_deployment() -> dict:
    """The deployment's inputs on a stack's first preview: the secret it reads does not exist yet,
    so its id and the fingerprint of its values are unknown."""
    return {
        "environment_name": "prod",
        "app_name": "rentagpu-executor",
        "function_name": "run_gpu_job",
        "gpus": ["H100"],
        "auth_mode": "oidc",
        "runtime_secret_name": "rentagpu-runtime",
        "runtime_secret_id": UNKNOWN,
        "secret_fingerprint": UNKNOWN,
        "source_hash": "0" * 64,
        "modal_version": "1.6.4",
    }


def test_a_first_preview_with_unknown_inputs_passes_check(provider_host_factory) -> None:
    host = provider_host_factory()
    secret = runtime_secret("prod", {"AWS_REGION": "eu-west-1", "AWS_ROLE_ARN": UNKNOWN})
    secret["environment_name"] = UNKNOWN  # an output of the environment, not created yet
    assert host.check(ModalSecretProvider(FAST), secret).failures == []
    assert host.check(ModalAppDeploymentProvider(FAST), first_preview_deployment()).failures == []
    environment = dev_environment(environment_name=UNKNOWN)
    assert host.check(ModalEnvironmentProvider(FAST), environment).failures == []


def test_bad_input_still_fails_check_under_the_host_naming_the_property(provider_host_factory):
    host = provider_host_factory()
    bad = runtime_secret("prod", {"AWS_REGION": "eu-west-1"}, secret_name="no spaces allowed")
    (failure,) = host.check(ModalSecretProvider(FAST), bad).failures
    assert failure[0] == "secret_name" and "Modal secret name" in failure[1]


def test_an_unknown_input_is_a_planned_change(provider_host_factory) -> None:
    host = provider_host_factory()
    olds = runtime_secret("prod", {"AWS_REGION": "eu-west-1", "AWS_ROLE_ARN": "arn:x"})
    news = runtime_secret("prod", {"AWS_REGION": "eu-west-1", "AWS_ROLE_ARN": UNKNOWN})
    answer = host.diff(ModalSecretProvider(FAST), {**olds, "keys": sorted(olds["values"])}, news)
    assert answer.changes == answer.DIFF_SOME


def test_a_failure_reads_as_one_clean_line_first(provider_host_factory) -> None:
    host = provider_host_factory({})  # no MODAL_TOKEN_* in the provider's environment
    with pytest.raises(HostError) as caught:
        host.create(ModalEnvironmentProvider(FAST), dev_environment())
    first = caught.value.details.splitlines()[0]
    assert first.startswith("rentagpu: MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are not set.")
    assert "export MODAL_TOKEN_ID" in first
    # The traceback follows for whoever needs it; it is not what the user reads first.
    assert "Traceback (most recent call last)" in caught.value.details


def test_a_bug_keeps_its_traceback_first(provider_host_factory) -> None:
    """Only the hook's own errors get a headline: an unexpected exception is a bug to report."""
    host = provider_host_factory({})
    with pytest.raises(HostError) as caught:
        host.create(ModalEnvironmentProvider(FAST), {"restricted": False})  # no environment_name
    assert caught.value.details.startswith("Traceback (most recent call last)")


def test_warnings_and_progress_reach_the_engine_on_stderr(provider_host_factory, fake_modal):
    host = provider_host_factory(fake_modal.environ())
    provider = ModalEnvironmentProvider(FAST)
    host.create(provider, dev_environment(service_user_roles={}))
    fake_modal.cli("environment", "delete", "dev", "--yes")
    gone_id, _ = host.read(provider, "dev", dev_environment(service_user_roles={}))
    printed = host.stop()
    assert gone_id == ""
    assert "info: creating Modal environment 'dev' (restricted=False)" in printed
    assert "warning: Modal environment 'dev' no longer exists" in printed
    assert fake_modal.token_secret not in printed
