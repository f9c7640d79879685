"""The fake Modal server's function calls (modal 1.6.4): FunctionGet, FunctionMap,
FunctionPutInputs and FunctionGetOutputs, and the "container" that runs a call.

What `.remote()` sends (`_Invocation`, modal/_functions.py:149-345) and what rentagpu's own
caller sends (infra/modal_hook/function_call.py) are served the same way. Deployed code "runs" as a
container would run it: the input is decoded by its `data_format`, `modal_app.executor.handle`
(what `run_gpu_job` runs) runs in this process with the environment a container of that function
would get (its image's `ENV` lines, the values of the secrets it names, looked up when the call runs; Modal's identity token for an app whose name
qualifies) and the machine it asked for (the first GPU of its definition, the Python packages its
image installed). The output is encoded as a container encodes it
(modal/_runtime/container_io_manager.py): in the input's format if the function's
`supported_output_formats` hold it, else in the first of them (`_determine_output_format`,
:334-349); a failure in PICKLE carries the pickled exception and traceback, in any other format
only the `exception` and `traceback` text (:352-416).

`FakeRuntime` (`server.runtime`) is how a test changes that: take the GPU away, make the next
calls crash, or forge the next output as a compromised container or server would send it (see
`side_effect_pickle`, `pickled_success` and `pickled_failure`). `install_function` puts a deployed
function in place without a `modal deploy`, for tests of the call alone.
"""

from __future__ import annotations

import pickle
import re
import shlex
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_deploy_state import (
    FakeCall,
    FakeFunctionDefinition,
    FakeRuntime,
    FakeVersion,
    deployed_app,
    deployments,
)
from tests.fakes.modal_rpc_base import Caller, RpcBase
from tests.fakes.modal_state import FakeApp, FakeModalState, new_id

FAKE_IDENTITY_TOKEN = "fake-modal-identity-token"  # not a secret: no AWS trusts this issuer
FAKE_DRIVER = "570.86.15"
# Modal injects an identity token only into apps with such names (see modal-protocol.md).
_OIDC_APP_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_GPU_NAMES = {
    "T4": "Tesla T4",
    "L4": "NVIDIA L4",
    "A10G": "NVIDIA A10G",
    "L40S": "NVIDIA L40S",
    "A100": "NVIDIA A100-SXM4-40GB",
    "A100-40GB": "NVIDIA A100-SXM4-40GB",
    "A100-80GB": "NVIDIA A100-SXM4-80GB",
    "H100": "NVIDIA H100 80GB HBM3",
    "H200": "NVIDIA H200",
    "B200": "NVIDIA B200",
}
# What modal 1.6.4 declares for a function that is not a web endpoint (modal/_functions.py:600-612).
DEFAULT_FORMATS = (api_pb2.DATA_FORMAT_PICKLE, api_pb2.DATA_FORMAT_CBOR)
_FAILURE = api_pb2.GenericResult.GENERIC_STATUS_FAILURE


class _Touch:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def side_effect_pickle(marker: Path) -> bytes:
    """A pickle whose unpickling creates `marker`, as a hostile one would run any code."""
    return pickle.dumps(_Touch(marker))


def pickled_success(marker: Path) -> api_pb2.FunctionGetOutputsItem:
    """A SUCCESS output in DATA_FORMAT_PICKLE whose data, unpickled, creates `marker`."""
    return api_pb2.FunctionGetOutputsItem(
        result=api_pb2.GenericResult(
            status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS, data=side_effect_pickle(marker)
        ),
        data_format=api_pb2.DATA_FORMAT_PICKLE,
    )


def pickled_failure(
    marker: Path, data_format: int = api_pb2.DATA_FORMAT_PICKLE
) -> api_pb2.FunctionGetOutputsItem:
    """A FAILURE whose `data`, `serialized_tb` and `tb_line_cache` each create `marker` when
    unpickled, in `data_format` (UNSPECIFIED is what Modal's own startup failures carry,
    modal/_utils/function_utils.py:538-543)."""
    bomb = side_effect_pickle(marker)
    return api_pb2.FunctionGetOutputsItem(
        result=api_pb2.GenericResult(
            status=_FAILURE,
            exception="RuntimeError('forged')",
            traceback="Traceback (most recent call last):\nRuntimeError: forged\n",
            data=bomb,
            serialized_tb=bomb,
            tb_line_cache=bomb,
        ),
        data_format=data_format,
    )


def install_function(
    state: FakeModalState,
    environment: str,
    app_name: str,
    function_name: str,
    *,
    input_formats: Sequence[int] = DEFAULT_FORMATS,
    output_formats: Sequence[int] = DEFAULT_FORMATS,
    input_plane_url: str = "",
) -> FakeVersion:
    """A deployed app (v1) with one CPU function, as if `modal deploy` had published it."""
    if environment not in state.environments:
        state.add_environment(environment)
    app = state.add_app(environment, app_name)
    handle = api_pb2.FunctionHandleMetadata(
        function_name=function_name,
        function_type=api_pb2.Function.FUNCTION_TYPE_FUNCTION,
        supported_input_formats=input_formats,
        supported_output_formats=output_formats,
        app_id=app.id,
    )
    if input_plane_url:
        handle.input_plane_url = input_plane_url
    function = api_pb2.Function(
        function_name=function_name,
        function_type=api_pb2.Function.FUNCTION_TYPE_FUNCTION,
        supported_input_formats=input_formats,
        supported_output_formats=output_formats,
    )
    data = api_pb2.FunctionData(
        function_name=function_name,
        function_type=function.function_type,
        ranked_functions=[api_pb2.FunctionData.RankedFunction(rank=0, function=function)],
    )
    definition = FakeFunctionDefinition(new_id("fu"), function_name, handle, data, (), "", ())
    version = FakeVersion(1, "v1", {function_name: definition}, state.now(), "test", "1.6.4")
    with state.lock:
        deployments(app).versions.append(version)
    return version


def output_format(input_format: int, supported: Sequence[int]) -> int:
    """container_io_manager.py:334-349 `_determine_output_format`."""
    if input_format in supported:
        return input_format
    if supported:
        return supported[0]
    return api_pb2.DATA_FORMAT_PICKLE


class FunctionCallRpcs(RpcBase):
    """Calls of deployed functions. Needs `runtime` (a `FakeRuntime`) on the servicer."""

    runtime: FakeRuntime

    def rpc_FunctionGet(self, request: api_pb2.FunctionGetRequest, caller: Caller):
        env = self._environment(request.environment_name)
        self._require_access(env, caller, write=False)
        app = deployed_app(self.state, env.name, request.app_name)
        if app is None:
            raise GRPCError(Status.NOT_FOUND, f"App '{request.app_name}' not found")
        live = deployments(app).live
        assert live is not None
        if request.app_version and request.app_version != live.version:
            # Modal serves pinned old versions; nothing here needs one, so say so loudly.
            raise GRPCError(
                Status.UNIMPLEMENTED,
                f"the fake serves the live version only (v{live.version}), "
                f"not v{request.app_version}",
            )
        definition = live.functions.get(request.object_tag)
        if definition is None:
            raise GRPCError(Status.NOT_FOUND, f"Function '{request.object_tag}' not found")
        return api_pb2.FunctionGetResponse(
            function_id=definition.function_id,
            handle_metadata=definition.handle,
            function=definition.data,
        )

    def _live_definition(self, function_id: str) -> tuple[FakeApp, FakeFunctionDefinition]:
        for app in self.state.apps.values():
            live = deployments(app).live
            if app.state != api_pb2.APP_STATE_DEPLOYED or live is None:
                continue
            for definition in live.functions.values():
                if definition.function_id == function_id:
                    return app, definition
        raise GRPCError(Status.NOT_FOUND, f"Function '{function_id}' is not deployed")

    def rpc_FunctionMap(self, request: api_pb2.FunctionMapRequest, caller: Caller):
        app, definition = self._live_definition(request.function_id)
        self._require_access(self._environment(app.environment), caller, write=True)
        if len(request.pipelined_inputs) != 1 or request.function_call_type != (
            api_pb2.FUNCTION_CALL_TYPE_UNARY
        ):
            raise GRPCError(Status.UNIMPLEMENTED, "the fake runs single, pipelined inputs only")
        call_id = new_id("fc")
        self.runtime.calls[call_id] = FakeCall(definition.function_id, None, 0, None)
        reply = api_pb2.FunctionMapResponse(
            function_call_id=call_id, function_call_jwt=f"fake-jwt-{call_id}"
        )
        if self.runtime.pipeline_inputs:
            reply.pipelined_inputs.append(
                self._take_input(app, definition, call_id, request.pipelined_inputs[0])
            )
        return reply

    def rpc_FunctionPutInputs(self, request: api_pb2.FunctionPutInputsRequest, caller: Caller):
        app, definition = self._live_definition(request.function_id)
        self._require_access(self._environment(app.environment), caller, write=True)
        call = self.runtime.calls.get(request.function_call_id)
        if call is None or call.function_id != definition.function_id:
            raise GRPCError(
                Status.NOT_FOUND, f"Function call '{request.function_call_id}' not found"
            )
        if len(request.inputs) != 1 or call.output is not None:
            raise GRPCError(Status.UNIMPLEMENTED, "the fake takes one input per call")
        taken = self._take_input(app, definition, request.function_call_id, request.inputs[0])
        return api_pb2.FunctionPutInputsResponse(inputs=[taken])

    def _take_input(
        self,
        app: FakeApp,
        definition: FakeFunctionDefinition,
        call_id: str,
        item: api_pb2.FunctionPutInputsItem,
    ) -> api_pb2.FunctionPutInputsResponseItem:
        if item.input.WhichOneof("args_oneof") != "args":
            raise GRPCError(Status.UNIMPLEMENTED, "the fake takes inputs inline, not as blobs")
        input_id = new_id("in")
        payload = _decode_input(item.input)
        if self.runtime.forged_outputs:
            output = self.runtime.forged_outputs.pop(0)
        else:
            output = self._run(app, definition, payload, item.input.data_format)
        output.idx = item.idx
        output.input_id = input_id
        output.output_created_at = self.state.now()
        call = self.runtime.calls[call_id]
        call.payload, call.input_format, call.output = payload, item.input.data_format, output
        return api_pb2.FunctionPutInputsResponseItem(
            idx=item.idx, input_id=input_id, input_jwt=f"fake-jwt-{input_id}"
        )

    def rpc_FunctionGetOutputs(self, request: api_pb2.FunctionGetOutputsRequest, caller: Caller):
        call = self.runtime.calls.get(request.function_call_id)
        if call is None:
            raise GRPCError(
                Status.NOT_FOUND, f"Function call '{request.function_call_id}' not found"
            )
        if call.output is None or self.runtime.withhold_outputs:
            # Modal would hold the poll for `request.timeout`; the fake answers at once.
            return api_pb2.FunctionGetOutputsResponse(num_unfinished_inputs=1)
        return api_pb2.FunctionGetOutputsResponse(outputs=[call.output], num_unfinished_inputs=0)

    # The "container".
    def _run(
        self, app: FakeApp, definition: FakeFunctionDefinition, payload: Any, input_format: int
    ) -> api_pb2.FunctionGetOutputsItem:
        """Run one input as a container of this function would, and encode its output."""
        from modal._serialization import pickle_exception, pickle_traceback, serialize_data_format

        from modal_app.context import JobContext
        from modal_app.executor import handle

        environ = self._container_environ(app, definition)
        if isinstance(environ, api_pb2.GenericResult):  # a failure Modal itself reports
            return api_pb2.FunctionGetOutputsItem(result=environ)
        task_id = new_id("ta")
        data_format = output_format(input_format, definition.handle.supported_output_formats)
        try:
            if self.runtime.crashes:
                raise self.runtime.crashes.pop(0)
            with self._machine(definition) as accelerator:
                value = handle(payload, JobContext(environ=environ, accelerator=accelerator))
            data = serialize_data_format(value, data_format)
        except Exception as exc:
            result = api_pb2.GenericResult(
                status=_FAILURE,
                exception=repr(exc),
                traceback="".join(traceback.format_exception(exc)),
            )
            if data_format == api_pb2.DATA_FORMAT_PICKLE:
                result.data = pickle_exception(exc)
                result.serialized_tb, result.tb_line_cache = pickle_traceback(exc, task_id)
        else:
            result = api_pb2.GenericResult(
                status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS, data=data
            )
        return api_pb2.FunctionGetOutputsItem(
            result=result, data_format=data_format, task_id=task_id
        )

    def _container_environ(
        self, app: FakeApp, definition: FakeFunctionDefinition
    ) -> dict[str, str] | api_pb2.GenericResult:
        """The container's environment; a result instead when it could not start (lost secret)."""
        environ = {
            **self._image_env(definition.image_id),
            "MODAL_ENVIRONMENT": app.environment,
            "MODAL_TASK_ID": new_id("ta"),
            "MODAL_REGION": "us-east-1",
            "MODAL_CLOUD_PROVIDER": "CLOUD_PROVIDER_AWS",
        }
        for secret_id in definition.secret_ids:
            secret = self.state.secret_by_id(secret_id)
            if secret is None:
                return api_pb2.GenericResult(
                    status=_FAILURE,
                    exception=f"Container failed to start: secret '{secret_id}' no longer exists",
                )
            environ.update(secret.values)
        if _OIDC_APP_NAME.match(app.name):
            environ["MODAL_IDENTITY_TOKEN"] = FAKE_IDENTITY_TOKEN
        return environ

    def _image_env(self, image_id: str) -> dict[str, str]:
        """The `ENV K=V` lines of an image and its bases (what `Image.env` builds), base first."""
        image = self.runtime.images.get(image_id)
        if image is None:
            return {}
        environ: dict[str, str] = {}
        for base in image.base_images:
            environ.update(self._image_env(base.image_id))
        for command in image.dockerfile_commands:
            if command.startswith("ENV "):
                name, _, value = command[4:].partition("=")
                environ[name] = shlex.split(value)[0] if value else ""
        return environ

    @contextmanager
    def _machine(self, definition: FakeFunctionDefinition) -> Iterator[Any]:
        """The accelerator and packages a container of `definition` sees.

        `healthcheck` asks the installed-package metadata and `nvidia-smi` directly, so these two
        are swapped for the container's view while the job runs (handlers run one at a time).
        """
        from modal_app.accelerator import Accelerator

        packages = self.runtime.image_packages.get(definition.image_id, {})
        gpu = definition.gpu_types[0] if definition.gpu_types and self.runtime.gpu_available else ""
        if gpu:
            name = _GPU_NAMES.get(gpu.upper(), gpu)
            accelerator = Accelerator("torch-cuda", name, None, "cuda")
            smi = [{"name": name, "driver": FAKE_DRIVER, "memory_mib": "81559"}]
        else:
            accelerator = Accelerator("numpy-cpu", "x86_64")
            smi = []
        with (
            mock.patch("modal_app.jobs.healthcheck.package_version", packages.get),
            mock.patch("modal_app.jobs.healthcheck.nvidia_smi", lambda: smi),
        ):
            yield accelerator


def _decode_input(function_input: api_pb2.FunctionInput) -> Any:
    """The payload of a call, decoded as a container decodes `(args, kwargs)` by the input's
    format (container_io_manager.py:200-204, `deserialize_data_format`,
    modal/_serialization.py:395-407). Pickle is decoded with the standard library: the payloads
    tests send are plain dicts, and Modal's Unpickler differs only in `persistent_load`, for Modal
    objects (:76-101). Never through modal._serialization, which tests replace to catch callers."""
    import cbor2

    if function_input.data_format == api_pb2.DATA_FORMAT_CBOR:
        args, kwargs = cbor2.loads(function_input.args)
    elif function_input.data_format == api_pb2.DATA_FORMAT_PICKLE:
        args, kwargs = pickle.loads(function_input.args)  # noqa: S301 - the test's own input
    else:
        raise GRPCError(Status.UNIMPLEMENTED, "the fake decodes CBOR and pickle inputs only")
    return args[0] if args else kwargs.get("payload")
