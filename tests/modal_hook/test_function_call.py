"""`call_function`: a deployed function called with CBOR, its output decoded as plain CBOR only.

Against the fake server's function calls (tests/fakes/modal_calls.py), with the function put in
place by `install_function` rather than a `modal deploy`, so each case costs milliseconds. What a
hostile server or container could send is forged with `FakeRuntime.forge_next_output`; a pickle
that would run code creates a marker file when unpickled, and the marker must never appear.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import Any

import cbor2
import pytest
from modal_proto import api_pb2

from infra.core.errors import Failure, FunctionCallError, ModalCallError
from infra.modal_hook.client import CallPolicy, run_modal
from infra.modal_hook.function_call import CBOR2_DEFAULT_TAGS, MAX_DEPTH, call_function, decode_cbor
from tests.fakes.modal_calls import install_function, pickled_failure, pickled_success
from tests.modal_hook.support import FAST

APP = "rentagpu-executor"
FUNCTION = "run_gpu_job"
PAYLOAD = {"job": "healthcheck"}
GenericResult = api_pb2.GenericResult


def call(version: int = 1, payload: Any = PAYLOAD, policy: CallPolicy = FAST) -> Any:
    async def operation(api):
        return await call_function(
            api, app=APP, function=FUNCTION, version=version, environment="dev", payload=payload
        )

    return run_modal(f"call {FUNCTION}", operation, policy=policy)


def sent(modal, rpc: str) -> list[Any]:
    return [c.request for c in modal.calls if c.rpc == rpc]


@pytest.fixture
def deployed(deploy_modal_env):
    install_function(deploy_modal_env.state, "dev", APP, FUNCTION)
    return deploy_modal_env


def test_a_call_goes_as_cbor_to_the_pinned_version_and_returns_the_decoded_result(deployed):
    result = call()

    assert result["job"] == "healthcheck" and result["ready"] is False  # no GPU on this one
    assert "no CUDA GPU is visible: jobs run on the CPU" in result["problems"]
    [get] = sent(deployed, "FunctionGet")
    assert (get.app_name, get.object_tag, get.environment_name) == (APP, FUNCTION, "dev")
    assert get.app_version == 1  # pinned, as Function.from_name(version=1) sends it
    [mapped] = sent(deployed, "FunctionMap")
    assert mapped.function_call_type == api_pb2.FUNCTION_CALL_TYPE_UNARY
    assert mapped.function_call_invocation_type == api_pb2.FUNCTION_CALL_INVOCATION_TYPE_SYNC
    [item] = mapped.pipelined_inputs
    assert item.input.data_format == api_pb2.DATA_FORMAT_CBOR
    assert cbor2.loads(item.input.args) == [[PAYLOAD], {}]  # (args, kwargs), as .remote sends
    # The container answered in the caller's format, as Modal's does.
    [fake_call] = deployed.server.runtime.calls.values()
    assert fake_call.output.data_format == api_pb2.DATA_FORMAT_CBOR
    assert "FunctionPutInputs" not in deployed.rpc_names()


def test_an_input_modal_did_not_take_with_the_call_is_put_separately(deployed):
    deployed.server.runtime.pipeline_inputs = False
    assert call()["job"] == "healthcheck"
    [put] = sent(deployed, "FunctionPutInputs")
    assert put.inputs[0].input.data_format == api_pb2.DATA_FORMAT_CBOR


@pytest.mark.parametrize("version", [0, -1, True])
def test_an_unpinned_version_is_refused_before_any_call(deployed, version):
    with pytest.raises(ModalCallError) as caught:
        call(version=version)
    assert caught.value.failure is Failure.INVALID
    assert f"version must be a deployed version (1 or more), got {version!r}" in str(caught.value)
    assert not {"FunctionGet", "FunctionMap"} & set(deployed.rpc_names())


def test_a_payload_cbor_cannot_carry_is_refused_before_any_call(deployed):
    with pytest.raises(ModalCallError, match="the payload cannot be sent as CBOR"):
        call(payload={"job": object()})
    assert "FunctionGet" not in deployed.rpc_names()


def test_a_function_without_cbor_input_is_refused_before_any_input_is_sent(deploy_modal_env):
    install_function(
        deploy_modal_env.state, "dev", APP, FUNCTION, input_formats=[api_pb2.DATA_FORMAT_PICKLE]
    )
    with pytest.raises(FunctionCallError) as caught:
        call()
    message = str(caught.value)
    assert f"function '{FUNCTION}' of app '{APP}' v1 in environment 'dev'" in message
    assert "does not accept CBOR input (it accepts: DATA_FORMAT_PICKLE)" in message
    assert "FunctionMap" not in deploy_modal_env.rpc_names()


def test_a_function_behind_the_input_plane_is_refused(deploy_modal_env):
    url = "https://input-plane.example.invalid"
    install_function(deploy_modal_env.state, "dev", APP, FUNCTION, input_plane_url=url)
    with pytest.raises(FunctionCallError, match=f"served through Modal's input plane \\({url}\\)"):
        call()
    assert "FunctionMap" not in deploy_modal_env.rpc_names()


FORGERIES = [
    (pickled_success, "DATA_FORMAT_PICKLE"),
    (pickled_failure, "DATA_FORMAT_PICKLE"),
    (
        partial(pickled_failure, data_format=api_pb2.DATA_FORMAT_UNSPECIFIED),
        "DATA_FORMAT_UNSPECIFIED",
    ),
]
FORGERY_IDS = ["success-pickle", "failure-pickle", "failure-unspecified"]


@pytest.mark.parametrize(("forge", "format_name"), FORGERIES, ids=FORGERY_IDS)
def test_a_pickled_output_is_refused_and_never_unpickled(deployed, tmp_path, forge, format_name):
    marker = tmp_path / "unpickled"
    deployed.server.runtime.forge_next_output(forge(marker))

    with pytest.raises(FunctionCallError) as caught:
        call()

    assert caught.value.refused_format == format_name
    message = str(caught.value)
    assert f"as {format_name}" in message and "never unpickles what a call returns" in message
    assert not marker.exists()


@pytest.mark.parametrize(("forge", "format_name"), FORGERIES, ids=FORGERY_IDS)
def test_the_sdk_would_have_run_the_forged_pickles(tmp_path, forge, format_name):
    """The control: `.remote()`'s decoding of the same outputs runs the planted code."""
    from modal._utils.function_utils import _process_result

    marker = tmp_path / "unpickled"
    output = forge(marker)
    with contextlib.suppress(Exception):  # what it raises afterwards does not matter
        asyncio.run(_process_result(output.result, output.data_format, None, None))
    assert marker.exists()


def test_a_failure_reports_modals_text_and_carries_no_pickle(deployed):
    deployed.server.runtime.crash_next_calls(RuntimeError("CUDA driver initialization failed"))

    with pytest.raises(FunctionCallError) as caught:
        call()

    assert str(caught.value) == (
        "it raised RuntimeError('CUDA driver initialization failed') in its container"
    )
    assert caught.value.refused_format == ""
    # What the fake container sent a CBOR caller: text only (container_io_manager.py:381-403).
    [fake_call] = deployed.server.runtime.calls.values()
    result = fake_call.output.result
    assert (result.data, result.serialized_tb, result.tb_line_cache) == (b"", b"", b"")


def test_pickles_in_a_cbor_failure_are_ignored_not_unpickled(deployed, tmp_path):
    marker = tmp_path / "unpickled"
    deployed.server.runtime.forge_next_output(pickled_failure(marker, api_pb2.DATA_FORMAT_CBOR))
    with pytest.raises(FunctionCallError, match=r"it raised RuntimeError\('forged'\)"):
        call()
    assert not marker.exists()


def test_a_call_modal_ended_names_the_status(deployed):
    timed_out = GenericResult(
        status=GenericResult.GENERIC_STATUS_TIMEOUT, exception="timed out after 1800 s"
    )
    deployed.server.runtime.forge_next_output(api_pb2.FunctionGetOutputsItem(result=timed_out))
    with pytest.raises(FunctionCallError) as caught:
        call()
    assert str(caught.value) == (
        "Modal ended the call with GENERIC_STATUS_TIMEOUT: timed out after 1800 s"
    )


def test_an_output_stored_as_a_blob_is_refused_not_downloaded(deployed):
    blob = GenericResult(status=GenericResult.GENERIC_STATUS_SUCCESS, data_blob_id="bl-x")
    deployed.server.runtime.forge_next_output(
        api_pb2.FunctionGetOutputsItem(result=blob, data_format=api_pb2.DATA_FORMAT_CBOR)
    )
    with pytest.raises(FunctionCallError, match="came back as a blob to download"):
        call()
    assert "BlobGet" not in deployed.rpc_names()


def test_cbor_with_a_tag_is_refused_through_the_whole_call(deployed):
    data = cbor2.dumps({"ready": True, "when": cbor2.CBORTag(1, 0)})  # a datetime, by default
    success = GenericResult(status=GenericResult.GENERIC_STATUS_SUCCESS, data=data)
    deployed.server.runtime.forge_next_output(
        api_pb2.FunctionGetOutputsItem(result=success, data_format=api_pb2.DATA_FORMAT_CBOR)
    )
    with pytest.raises(FunctionCallError, match="CBOR rentagpu does not decode"):
        call()


def test_a_call_with_no_output_by_the_deadline_says_so(deployed):
    deployed.server.runtime.withhold_outputs = True
    with pytest.raises(FunctionCallError, match="it returned no output within 4 s"):
        call(policy=CallPolicy(connect_timeout_s=2, attempt_timeout_s=2, deadline_s=4))
    assert len(sent(deployed, "FunctionGetOutputs")) >= 2  # it kept polling until then


@pytest.mark.parametrize(
    "value",
    [
        cbor2.CBORTag(36, "Content-Type: text/plain\n\nhi"),  # an email message, by default
        cbor2.CBORTag(35, "a+"),  # a compiled regular expression
        cbor2.CBORTag(258, [1, 2]),  # a set
        cbor2.CBORTag(28, [cbor2.CBORTag(29, 0)]),  # a shared, self-referencing array
        cbor2.CBORTag(4, [-1, 5]),  # a Decimal
        cbor2.CBORTag(9999, "x"),  # a tag cbor2 does not know
        cbor2.undefined,
        cbor2.CBORSimpleValue(99),
    ],
    ids=["mime", "regex", "set", "shared", "decimal", "unknown", "undefined", "simple"],
)
def test_decode_cbor_refuses_tags_and_simple_values(value):
    with pytest.raises(FunctionCallError, match="CBOR rentagpu does not decode"):
        decode_cbor(cbor2.dumps({"ready": True, "x": value}))


def test_decode_cbor_builds_no_object_for_a_tag(monkeypatch):
    """Refused before construction, not after: cbor2's default decoders for a regular expression
    (tag 35) and a UUID (tag 37) never run. The control shows plain `cbor2.loads` runs both."""
    import re
    import uuid

    built: list[str] = []
    compile_, uuid_init = re.compile, uuid.UUID.__init__

    def recording_compile(*args: Any, **kwargs: Any) -> Any:
        built.append("regex")
        return compile_(*args, **kwargs)

    def recording_init(self: uuid.UUID, *args: Any, **kwargs: Any) -> None:
        built.append("uuid")
        uuid_init(self, *args, **kwargs)

    monkeypatch.setattr(re, "compile", recording_compile)
    monkeypatch.setattr(uuid.UUID, "__init__", recording_init)
    tagged = [cbor2.dumps(cbor2.CBORTag(35, "a+")), cbor2.dumps(cbor2.CBORTag(37, bytes(16)))]
    for data in tagged:
        with pytest.raises(FunctionCallError):
            decode_cbor(data)
    assert built == []
    for data in tagged:
        cbor2.loads(data)
    assert built == ["regex", "uuid"]


def test_decode_cbor_refuses_deep_nesting_duplicate_keys_and_array_keys():
    deep: Any = 0
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    for data in (
        cbor2.dumps(deep),
        bytes.fromhex("a2616101616102"),  # {"a": 1, "a": 2}
        cbor2.dumps({(1, 2): 3}),
    ):
        with pytest.raises(FunctionCallError, match="CBOR rentagpu does not decode"):
            decode_cbor(data)


def test_decode_cbor_returns_plain_values():
    report = {"ready": True, "problems": [], "gpus": [{"name": "x"}], "cuda": None, "n": 1.5}
    assert decode_cbor(cbor2.dumps({**report, 7: b"raw"})) == {**report, 7: b"raw"}


def test_every_tag_the_installed_cbor2_decodes_by_default_is_refused():
    """Re-derives CBOR2_DEFAULT_TAGS from the installed cbor2: a tag it decodes into something
    other than a `CBORTag` (or fails on) has a default decoder that `decode_cbor` must override."""
    known = []
    for tag in range(1 << 16):
        try:
            value = cbor2.loads(cbor2.dumps(cbor2.CBORTag(tag, 0)))
        except cbor2.CBORError:
            known.append(tag)
            continue
        if not (isinstance(value, cbor2.CBORTag) and value.tag == tag and value.value == 0):
            known.append(tag)
    assert tuple(known) == CBOR2_DEFAULT_TAGS
