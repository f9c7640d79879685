"""The fake Modal server, extended with what deploying and calling an app sends (modal 1.6.4).

`modal deploy` (RPCs in the order of shared/reference/modal-protocol.md), then
`Function.from_name(app, fn, version=N).remote(payload)` (FunctionGet, FunctionMap with the input
pipelined, FunctionGetOutputs), and the app management RPCs the deploy stage and the `modal app`
CLI use: AppDeploymentHistory, AppRollback, AppRollover, AppStop, AppGetLifecycle, and an
AppGetByDeploymentName that, like Modal's, finds only a deployed app (a stopped one comes back as
`previous_app_id`). Anything else is still answered UNIMPLEMENTED and recorded.

Deployed code "runs" the way a container would run it: the fake deserializes the call's input and
calls `modal_app.executor.handle(payload)` (what `run_gpu_job` runs) in this process, with the
environment a container of that function would get (its image's `ENV` lines, the values of the
secrets the deployed function names, looked up when the call runs; Modal's identity token for an
app whose name qualifies) and the machine it asked
for: the first GPU of its definition and the Python packages its image installed. `FakeRuntime`
(`server.runtime`) is how a test changes that machine: take the GPU away, or make the next calls
crash with an exception, as a broken image would.

Every publish, rollback and rollover appends a version to the app's history, newest last here and
newest first on the wire, as `modal app history` shows it.
"""

from __future__ import annotations

import re
import shlex
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_fixtures import CI_SERVICE_USER, FakeModal
from tests.fakes.modal_rpc_base import Caller
from tests.fakes.modal_server import FakeModalServer, FakeModalServicer
from tests.fakes.modal_state import FakeApp, FakeModalState, new_id

FAKE_IDENTITY_TOKEN = "fake-modal-identity-token"  # not a secret: no AWS trusts this issuer
FAKE_DRIVER = "570.86.15"
IMAGE_BUILDER_VERSION = (
    "2025.06"  # one that modal 1.6.4 supports; a deploy reads it per environment
)
# Modal injects an identity token only into apps with such names (see modal-protocol.md).
_OIDC_APP_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)")
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


@dataclass
class FakeFunctionDefinition:
    """What one FunctionCreate declared: the function a container of this version runs."""

    function_id: str
    name: str
    handle: api_pb2.FunctionHandleMetadata
    data: api_pb2.FunctionData
    secret_ids: tuple[str, ...]
    image_id: str
    gpu_types: tuple[str, ...]


@dataclass
class FakeVersion:
    """One entry of an app's deployment history."""

    version: int
    tag: str
    functions: dict[str, FakeFunctionDefinition]  # object tag -> definition
    deployed_at: float
    deployed_by: str
    client_version: str
    commit_info: api_pb2.CommitInfo | None = None
    rollback_version: int = 0
    kind: str = "deploy"  # "deploy", "rollback" or "rollover"


@dataclass
class FakeAppDeployments:
    """Deploy data of one app, kept in `FakeApp.extra["deploy"]`."""

    versions: list[FakeVersion] = field(default_factory=list)
    pending: dict[str, FakeFunctionDefinition] = field(default_factory=dict)  # created, unpublished
    stopped_at: float = 0.0
    stopped_by: str = ""

    @property
    def live(self) -> FakeVersion | None:
        return self.versions[-1] if self.versions else None


@dataclass
class FakeCall:
    function_id: str
    payload: Any
    output: api_pb2.FunctionGetOutputsItem


@dataclass
class FakeRuntime:
    """What deployed code finds when it runs, and what it did. Tests change it between calls."""

    gpu_available: bool = True
    skip_next_publish: bool = False  # answer the next AppPublish as Modal does a no-op deploy
    crashes: list[BaseException] = field(default_factory=list)  # raised by the next calls
    files: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)  # mount id -> path -> sha256
    images: dict[str, api_pb2.Image] = field(default_factory=dict)
    image_packages: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: dict[str, FakeCall] = field(default_factory=dict)

    def crash_next_calls(self, exception: BaseException, times: int = 1) -> None:
        """Make the next `times` calls raise `exception` inside the "container"."""
        self.crashes.extend([exception] * times)

    def payloads(self) -> list[Any]:
        return [call.payload for call in self.calls.values()]

    def mounted_file(self, suffix: str) -> bytes | None:
        """The content of the latest uploaded file whose mount path ends with `suffix`."""
        found = None
        for files in self.mounts.values():
            for path, sha in files.items():
                if path.endswith(suffix):
                    found = self.files.get(sha)
        return found


def deployments(app: FakeApp) -> FakeAppDeployments:
    return app.extra.setdefault("deploy", FakeAppDeployments())


def live_version(state: FakeModalState, environment: str, name: str) -> FakeVersion | None:
    """The version a user sees live (`modal app history`'s first row), or None if not deployed."""
    with state.lock:
        app = _deployed_app(state, environment, name)
        return deployments(app).live if app else None


def _deployed_app(state: FakeModalState, environment: str, name: str) -> FakeApp | None:
    return next(
        (
            a
            for a in state.apps_in(environment)
            if a.name == name and a.state == api_pb2.APP_STATE_DEPLOYED
        ),
        None,
    )


class FakeModalDeployServicer(FakeModalServicer):
    """The base fake plus deploy, function calls and app management."""

    def __init__(self, server: FakeModalDeployServer) -> None:
        super().__init__(server)
        self.runtime = server.runtime

    # Helpers.
    def _app(self, app_id: str, caller: Caller, *, write: bool) -> FakeApp:
        app = self.state.apps.get(app_id)
        if app is None:
            raise GRPCError(Status.NOT_FOUND, f"App '{app_id}' not found")
        self._require_access(self._environment(app.environment), caller, write=write)
        return app

    def _lifecycle(self, app: FakeApp) -> api_pb2.AppLifecycle:
        deploy = deployments(app)
        live = deploy.live
        return api_pb2.AppLifecycle(
            app_state=app.state,
            created_at=app.created_at,
            deployed_at=live.deployed_at if live else 0.0,
            deployed_by=live.deployed_by if live else "",
            version=live.version if live else 0,
            stopped_at=deploy.stopped_at,
            stopped_by=deploy.stopped_by,
        )

    def _add_version(self, app: FakeApp, caller: Caller, **fields: Any) -> FakeVersion:
        deploy = deployments(app)
        version = FakeVersion(
            version=len(deploy.versions) + 1,
            deployed_at=self.state.now(),
            deployed_by=caller.principal.name,
            **fields,
        )
        deploy.versions.append(version)
        app.state = api_pb2.APP_STATE_DEPLOYED
        app.deployment_tag = version.tag
        return version

    def _require_deployed(self, app: FakeApp) -> FakeVersion:
        live = deployments(app).live
        if app.state != api_pb2.APP_STATE_DEPLOYED or live is None:
            raise GRPCError(Status.FAILED_PRECONDITION, f"App '{app.id}' is not deployed")
        return live

    # Environments: a deploy needs the image builder version.
    def rpc_EnvironmentGetOrCreate(self, request, caller: Caller):
        reply = super().rpc_EnvironmentGetOrCreate(request, caller)
        reply.metadata.settings.image_builder_version = IMAGE_BUILDER_VERSION
        return reply

    # Looking apps up.
    def rpc_AppGetByDeploymentName(self, request: api_pb2.AppGetByDeploymentNameRequest, caller):
        env = self._environment(request.environment_name)
        self._require_access(env, caller, write=False)
        reply = api_pb2.AppGetByDeploymentNameResponse(environment_name=env.name)
        app = _deployed_app(self.state, env.name, request.name)
        if app is not None:
            reply.app_id = app.id
        else:
            stopped = [
                a
                for a in self.state.apps_in(env.name)
                if a.name == request.name and a.state == api_pb2.APP_STATE_STOPPED
            ]
            if not stopped:
                return reply
            app = max(stopped, key=lambda a: a.created_at)
            reply.previous_app_id = app.id
        reply.lifecycle.CopyFrom(self._lifecycle(app))
        return reply

    def rpc_AppGetLifecycle(self, request: api_pb2.AppGetLifecycleRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=False)
        return api_pb2.AppGetLifecycleResponse(lifecycle=self._lifecycle(app))

    def rpc_AppGetLayout(self, request: api_pb2.AppGetLayoutRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=False)
        live = deployments(app).live
        function_ids = {tag: f.function_id for tag, f in live.functions.items()} if live else {}
        return api_pb2.AppGetLayoutResponse(app_layout=api_pb2.AppLayout(function_ids=function_ids))

    def rpc_AppDeploymentHistory(self, request: api_pb2.AppDeploymentHistoryRequest, caller):
        app = self._app(request.app_id, caller, write=False)
        deploy = deployments(app)
        entries = []
        for v in reversed(deploy.versions):
            entry = api_pb2.AppDeploymentHistory(
                app_id=app.id,
                version=v.version,
                client_version=v.client_version,
                deployed_at=v.deployed_at,
                deployed_by=v.deployed_by,
                tag=v.tag,
                rollback_version=v.rollback_version,
                rollback_allowed=v is not deploy.live,
            )
            if v.commit_info is not None:
                entry.commit_info.CopyFrom(v.commit_info)
            entries.append(entry)
        live = deploy.live
        return api_pb2.AppDeploymentHistoryResponse(
            app_deployment_histories=entries,
            production_app_version=live.version if live else 0,
        )

    # Deploying.
    def rpc_AppCreate(self, request: api_pb2.AppCreateRequest, caller: Caller):
        env = self._environment(request.environment_name)
        self._require_access(env, caller, write=True)
        app = self.state.add_app(env.name, "", state=request.app_state)
        app.description = request.description
        return api_pb2.AppCreateResponse(
            app_id=app.id,
            app_page_url=f"https://modal.com/apps/fake/{env.name}/{app.id}",
            app_logs_url=f"https://modal.com/apps/fake/{env.name}/{app.id}/logs",
        )

    def rpc_AppHeartbeat(self, request: api_pb2.AppHeartbeatRequest, caller: Caller):
        self._app(request.app_id, caller, write=False)
        return empty_pb2.Empty()

    def rpc_AppClientDisconnect(self, request: api_pb2.AppClientDisconnectRequest, caller):
        app = self._app(request.app_id, caller, write=True)
        # Like Modal: stops an app that never got published, leaves a deployed one alone.
        if app.state == api_pb2.APP_STATE_INITIALIZING:
            app.state = api_pb2.APP_STATE_STOPPED
        deployments(app).pending.clear()
        return empty_pb2.Empty()

    def rpc_FunctionPrecreate(self, request: api_pb2.FunctionPrecreateRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=True)
        known = {f.function_id for v in deployments(app).versions for f in v.functions.values()}
        function_id = (
            request.existing_function_id if request.existing_function_id in known else new_id("fu")
        )
        handle = api_pb2.FunctionHandleMetadata(
            function_name=request.function_name,
            function_type=request.function_type,
            supported_input_formats=request.supported_input_formats,
            supported_output_formats=request.supported_output_formats,
            app_id=app.id,
        )
        return api_pb2.FunctionPrecreateResponse(function_id=function_id, handle_metadata=handle)

    def rpc_MountGetOrCreate(self, request: api_pb2.MountGetOrCreateRequest, caller: Caller):
        creation = request.object_creation_type
        if creation == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED:
            # A lookup: only Modal's own client mount is ever looked up by a deploy.
            if not request.deployment_name.startswith("modal-client-mount-"):
                raise GRPCError(Status.NOT_FOUND, f"Mount '{request.deployment_name}' not found")
            mount_id = "mo-client-" + request.deployment_name.rsplit("-", 1)[-1].replace(".", "")
            return api_pb2.MountGetOrCreateResponse(mount_id=mount_id)
        if creation != api_pb2.OBJECT_CREATION_TYPE_ANONYMOUS_OWNED_BY_APP:
            raise GRPCError(Status.UNIMPLEMENTED, "the fake only creates app-owned mounts")
        self._app(request.app_id, caller, write=True)
        missing = [f.filename for f in request.files if f.sha256_hex not in self.runtime.files]
        if missing:
            raise GRPCError(Status.FAILED_PRECONDITION, f"Mount files not uploaded: {missing}")
        mount_id = new_id("mo")
        self.runtime.mounts[mount_id] = {f.filename: f.sha256_hex for f in request.files}
        return api_pb2.MountGetOrCreateResponse(mount_id=mount_id)

    def rpc_MountBatchedCheckExistence(self, request, caller: Caller):
        missing = [h for h in request.sha256_hex_hashes if h not in self.runtime.files]
        return api_pb2.MountBatchedCheckExistenceResponse(missing_sha256_hex_hashes=missing)

    def rpc_MountPutFile(self, request: api_pb2.MountPutFileRequest, caller: Caller):
        if request.WhichOneof("data_oneof") != "data":
            raise GRPCError(Status.UNIMPLEMENTED, "the fake takes mount files inline, not as blobs")
        self.runtime.files[request.sha256_hex] = request.data
        return api_pb2.MountPutFileResponse(exists=True)

    def rpc_ImageGetOrCreate(self, request: api_pb2.ImageGetOrCreateRequest, caller: Caller):
        # Every image "builds" at once; its packages are the base images' plus its own pins.
        image_id = new_id("im")
        packages: dict[str, str] = {}
        for base in request.image.base_images:
            packages.update(self.runtime.image_packages.get(base.image_id, {}))
        for command in request.image.dockerfile_commands:
            if "pip install" in command:
                packages.update({n.lower(): v for n, v in _PIN.findall(command)})
        self.runtime.images[image_id] = request.image
        self.runtime.image_packages[image_id] = packages
        success = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS)
        metadata = api_pb2.ImageMetadata(
            python_version_info="3.11.7 (main, fake)", python_packages=packages
        )
        return api_pb2.ImageGetOrCreateResponse(
            image_id=image_id, result=success, metadata=metadata
        )

    def rpc_FunctionCreate(self, request: api_pb2.FunctionCreateRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=True)
        if request.HasField("function_data"):
            # GPU fallbacks: one ranked Function per GPU type, the same in everything else.
            data = api_pb2.FunctionData()
            data.CopyFrom(request.function_data)
            if not data.ranked_functions:
                raise GRPCError(Status.INVALID_ARGUMENT, "FunctionData without ranked functions")
            first = data.ranked_functions[0].function
        else:
            first = request.function
            data = api_pb2.FunctionData(
                function_name=first.function_name,
                function_type=first.function_type,
                ranked_functions=[api_pb2.FunctionData.RankedFunction(rank=0, function=first)],
            )
        name = data.function_name or first.function_name
        image_id = first.image_id
        secret_ids = tuple(first.secret_ids)
        gpu_types = tuple(
            r.function.resources.gpu_config.gpu_type
            for r in data.ranked_functions
            if r.function.resources.gpu_config.count
        )
        for secret_id in secret_ids:
            if self.state.secret_by_id(secret_id) is None:
                raise GRPCError(Status.NOT_FOUND, f"Secret '{secret_id}' not found")
        function_id = request.existing_function_id or new_id("fu")
        handle = api_pb2.FunctionHandleMetadata(
            function_name=name,
            function_type=data.function_type or first.function_type,
            supported_input_formats=[api_pb2.DATA_FORMAT_PICKLE, api_pb2.DATA_FORMAT_CBOR],
            supported_output_formats=[api_pb2.DATA_FORMAT_PICKLE, api_pb2.DATA_FORMAT_CBOR],
            definition_id=new_id("de"),
            app_id=app.id,
        )
        definition = FakeFunctionDefinition(
            function_id, name, handle, data, secret_ids, image_id, gpu_types
        )
        deployments(app).pending[function_id] = definition
        return api_pb2.FunctionCreateResponse(
            function_id=function_id, handle_metadata=handle, function_data=data
        )

    def rpc_AppPublish(self, request: api_pb2.AppPublishRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=True)
        if request.app_state != api_pb2.APP_STATE_DEPLOYED or request.staged or request.class_ids:
            raise GRPCError(Status.UNIMPLEMENTED, "the fake publishes deployed function apps only")
        other = _deployed_app(self.state, app.environment, request.name)
        if other is not None and other.id != app.id:
            raise GRPCError(Status.ALREADY_EXISTS, f"App '{request.name}' is already deployed")
        deploy = deployments(app)
        previous = deploy.live
        functions = {}
        for tag, function_id in request.function_ids.items():
            definition = deploy.pending.get(function_id) or (
                previous.functions.get(tag) if previous else None
            )
            if definition is None:
                raise GRPCError(Status.FAILED_PRECONDITION, f"Function '{tag}' was never created")
            functions[tag] = definition
        app.name = request.name
        if self.runtime.skip_next_publish and previous is not None:
            # Modal answers a deploy that changes nothing with no new version and no deployed_at.
            self.runtime.skip_next_publish = False
            deploy.pending.clear()
            return api_pb2.AppPublishResponse(
                url=f"https://modal.com/apps/fake/{app.environment}/{request.name}"
            )
        version = self._add_version(
            app,
            caller,
            tag=request.deployment_tag,
            functions=functions,
            client_version=request.client_version or "1.6.4",
            commit_info=request.commit_info if request.HasField("commit_info") else None,
        )
        deploy.pending.clear()
        return api_pb2.AppPublishResponse(
            url=f"https://modal.com/apps/fake/{app.environment}/{request.name}",
            deployed_at=version.deployed_at,
        )

    # Managing deployed apps.
    def rpc_AppRollback(self, request: api_pb2.AppRollbackRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=True)
        live = self._require_deployed(app)
        versions = deployments(app).versions
        number = live.version - 1 if request.version == -1 else request.version
        target = next((v for v in versions if v.version == number), None)
        if target is None or target is live:
            raise GRPCError(Status.INVALID_ARGUMENT, f"No version {number} to roll back to")
        version = self._add_version(
            app,
            caller,
            tag=target.tag,
            functions=dict(target.functions),
            client_version=target.client_version,
            commit_info=target.commit_info,
            rollback_version=target.version,
            kind="rollback",
        )
        return api_pb2.AppRollbackResponse(
            url=f"https://modal.com/apps/fake/{app.environment}/{app.name}",
            deployed_at=version.deployed_at,
        )

    def rpc_AppRollover(self, request: api_pb2.AppRolloverRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=True)
        live = self._require_deployed(app)
        version = self._add_version(
            app,
            caller,
            tag=live.tag,
            functions=dict(live.functions),
            client_version=live.client_version,
            commit_info=live.commit_info,
            kind="rollover",
        )
        return api_pb2.AppRolloverResponse(
            url=f"https://modal.com/apps/fake/{app.environment}/{app.name}",
            deployed_at=version.deployed_at,
        )

    def rpc_AppStop(self, request: api_pb2.AppStopRequest, caller: Caller):
        app = self._app(request.app_id, caller, write=True)
        app.state = api_pb2.APP_STATE_STOPPED
        deploy = deployments(app)
        deploy.stopped_at = self.state.now()
        deploy.stopped_by = caller.principal.name
        return empty_pb2.Empty()

    # Calling functions.
    def rpc_FunctionGet(self, request: api_pb2.FunctionGetRequest, caller: Caller):
        env = self._environment(request.environment_name)
        self._require_access(env, caller, write=False)
        app = _deployed_app(self.state, env.name, request.app_name)
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
        item = request.pipelined_inputs[0]
        if item.input.WhichOneof("args_oneof") != "args":
            raise GRPCError(Status.UNIMPLEMENTED, "the fake takes inputs inline, not as blobs")
        call_id = new_id("fc")
        input_id = new_id("in")
        payload, result, data_format = self._run(app, definition, item.input)
        output = api_pb2.FunctionGetOutputsItem(
            result=result,
            idx=item.idx,
            input_id=input_id,
            data_format=data_format,
            task_id=new_id("ta"),
            output_created_at=self.state.now(),
        )
        self.runtime.calls[call_id] = FakeCall(definition.function_id, payload, output)
        return api_pb2.FunctionMapResponse(
            function_call_id=call_id,
            function_call_jwt=f"fake-jwt-{call_id}",
            pipelined_inputs=[
                api_pb2.FunctionPutInputsResponseItem(
                    idx=item.idx, input_id=input_id, input_jwt=f"fake-jwt-{input_id}"
                )
            ],
        )

    def rpc_FunctionGetOutputs(self, request: api_pb2.FunctionGetOutputsRequest, caller: Caller):
        call = self.runtime.calls.get(request.function_call_id)
        if call is None:
            raise GRPCError(
                Status.NOT_FOUND, f"Function call '{request.function_call_id}' not found"
            )
        return api_pb2.FunctionGetOutputsResponse(outputs=[call.output], num_unfinished_inputs=0)

    # The "container".
    def _run(
        self,
        app: FakeApp,
        definition: FakeFunctionDefinition,
        function_input: api_pb2.FunctionInput,
    ) -> tuple[Any, api_pb2.GenericResult, int]:
        """Run one input as a container of this function would; returns (payload, result, format)."""
        from modal._serialization import (
            deserialize_data_format,
            pickle_exception,
            serialize_data_format,
        )

        from modal_app.context import JobContext
        from modal_app.executor import handle

        args, kwargs = deserialize_data_format(
            function_input.args, function_input.data_format, None
        )
        payload = args[0] if args else kwargs.get("payload")
        environ = self._container_environ(app, definition)
        if isinstance(environ, api_pb2.GenericResult):
            return payload, environ, api_pb2.DATA_FORMAT_UNSPECIFIED
        try:
            if self.runtime.crashes:
                raise self.runtime.crashes.pop(0)
            with self._machine(definition) as accelerator:
                value = handle(payload, JobContext(environ=environ, accelerator=accelerator))
        except Exception as exc:
            failure = api_pb2.GenericResult(
                status=api_pb2.GenericResult.GENERIC_STATUS_FAILURE,
                exception=repr(exc),
                traceback="".join(traceback.format_exception(exc)),
                data=pickle_exception(exc),
            )
            return payload, failure, api_pb2.DATA_FORMAT_PICKLE
        success = api_pb2.GenericResult(
            status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS,
            data=serialize_data_format(value, api_pb2.DATA_FORMAT_PICKLE),
        )
        return payload, success, api_pb2.DATA_FORMAT_PICKLE

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
                    status=api_pb2.GenericResult.GENERIC_STATUS_FAILURE,
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


class FakeModalDeployServer(FakeModalServer):
    """A fake server that also deploys and runs apps; `runtime` is the machine they run on."""

    def __init__(self, state: FakeModalState | None = None) -> None:
        self.runtime = FakeRuntime()
        super().__init__(state, servicer_class=FakeModalDeployServicer)


# Pytest fixtures (registered for every test by tests/conftest.py).


@pytest.fixture
def deploy_modal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeModal]:
    """A fresh deploy-capable fake server: owner token, service user rentagpu-ci."""
    config_path = tmp_path_factory.mktemp("modal-config") / "modal.toml"
    config_path.write_text("")  # an empty profile: nothing from a developer's ~/.modal.toml
    server = FakeModalDeployServer().start()
    server.state.add_service_user(CI_SERVICE_USER)
    try:
        yield FakeModal(server, config_path)
    finally:
        server.stop()
    bugs = [call.rpc for call in server.fake_bugs()]
    assert not bugs, f"the fake Modal server crashed handling {bugs}"


@pytest.fixture
def deploy_modal_env(deploy_modal: FakeModal, monkeypatch: pytest.MonkeyPatch) -> FakeModal:
    """`deploy_modal`, with its MODAL_* variables exported into the test process."""
    deploy_modal.use(monkeypatch)
    return deploy_modal
