"""The smoke job through the real deploy path: its output is never unpickled in `pulumi up`.

`ModalAppDeploymentProvider` deploys with the real `modal deploy` against the fake server, then
runs the smoke job. The SDK's decoders (`deserialize`, `deserialize_data_format`,
`_process_result`, wherever modal's modules hold them) are replaced by tripwires for every test
here, so a smoke job that reached them again, through `.remote()` or otherwise, fails these tests;
a control shows that `.remote()` does reach them.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import modal
import pytest
from modal_proto import api_pb2

from infra.core.errors import DeployError
from tests.fakes.modal_calls import install_function, pickled_failure, pickled_success
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

_DECODERS = ("deserialize", "deserialize_data_format", "_process_result")


@pytest.fixture
def tripwires(monkeypatch) -> list[str]:
    """Replace every reference modal's modules hold to the SDK's decoders; returns the calls."""
    import modal._functions
    import modal._serialization
    import modal._utils.function_utils

    originals = {
        modal._serialization.deserialize,
        modal._serialization.deserialize_data_format,
        modal._utils.function_utils._process_result,
    }
    hits: list[str] = []

    def tripwire(where: str, *args: Any, **kwargs: Any) -> Any:
        hits.append(where)
        raise AssertionError(f"{where} was called")

    replaced = set()
    for name, module in list(sys.modules.items()):
        if name != "modal" and not name.startswith("modal."):
            continue
        for attr in _DECODERS:
            if getattr(module, attr, None) in originals:
                monkeypatch.setattr(module, attr, partial(tripwire, f"{name}.{attr}"))
                replaced.add(f"{name}.{attr}")
    # The references `.remote()` decodes through (modal/_functions.py:61, function_utils.py:19-20).
    assert {
        "modal._serialization.deserialize",
        "modal._functions._process_result",
        "modal._utils.function_utils._process_result",
        "modal._utils.function_utils.deserialize",
    } <= replaced
    return hits


def test_the_smoke_job_passes_as_cbor_and_nothing_is_unpickled(
    deploy_modal_env, provider, source, monkeypatch, tripwires
):
    monkeypatch.setenv("GITHUB_SHA", revision())
    values = runtime_values()
    created = provider.create(
        checked(provider, deployment(source, seed(deploy_modal_env.state, values), values))
    )

    assert created.outs["smoke_summary"] == "ready on NVIDIA H100 80GB HBM3 (torch-cuda)"
    assert tripwires == []
    runtime = deploy_modal_env.server.runtime
    assert runtime.input_formats() == [api_pb2.DATA_FORMAT_CBOR]
    # The app's function, as `modal deploy` declared it, takes CBOR and answers in it.
    [create] = [c.request for c in deploy_modal_env.calls if c.rpc == "FunctionCreate"]
    declared = create.function_data.ranked_functions[0].function
    assert api_pb2.DATA_FORMAT_CBOR in declared.supported_input_formats
    assert api_pb2.DATA_FORMAT_CBOR in declared.supported_output_formats
    [call] = runtime.calls.values()
    assert call.output.data_format == api_pb2.DATA_FORMAT_CBOR


def test_the_tripwires_catch_the_sdks_remote(deploy_modal_env, tripwires):
    """The control: `Function.remote()`, the smoke job's former path, decodes through them."""
    install_function(deploy_modal_env.state, "dev", APP, "run_gpu_job")
    with modal.Client.from_credentials(
        deploy_modal_env.token_id, deploy_modal_env.token_secret
    ) as client:
        function = modal.Function.from_name(APP, "run_gpu_job", environment_name="dev")
        function.hydrate(client)
        with pytest.raises(AssertionError):
            function.remote({"job": "healthcheck"})
    assert tripwires == ["modal._functions._process_result"]


@pytest.mark.parametrize(
    ("forge", "format_name"),
    [
        (pickled_success, "DATA_FORMAT_PICKLE"),
        (pickled_failure, "DATA_FORMAT_PICKLE"),
        (
            partial(pickled_failure, data_format=api_pb2.DATA_FORMAT_UNSPECIFIED),
            "DATA_FORMAT_UNSPECIFIED",
        ),
    ],
    ids=["success-pickle", "failure-pickle", "failure-unspecified"],
)
def test_a_pickled_smoke_output_fails_the_deploy_and_rolls_it_back_unpickled(
    deploy_modal_env, provider, source, monkeypatch, tmp_path, tripwires, forge, format_name
):
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    monkeypatch.setenv("GITHUB_SHA", first := revision())
    created = provider.create(checked(provider, deployment(source, secret_id, values)))

    # The next version answers its smoke job with a pickle that would run code in `pulumi up`.
    monkeypatch.setenv("GITHUB_SHA", second := revision())
    edit_source(source, "executor.py", "# next release")
    news = checked(provider, deployment(source, secret_id, values))
    marker = tmp_path / "unpickled"
    deploy_modal_env.server.runtime.forge_next_output(forge(marker))
    with pytest.raises(DeployError) as caught:
        provider.update(created.id, created.outs, news)

    assert not marker.exists() and tripwires == []
    message = str(caught.value)
    assert f"deployed:  v2 (tag {second}), by this update" in message
    assert f"as {format_name}" in message and "never unpickles what a call returns" in message
    assert f"live now:  v3, a rollback to v1 (tag {first})" in message
    assert live(deploy_modal_env.state) == (3, first)
