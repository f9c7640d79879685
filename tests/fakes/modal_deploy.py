"""The fake Modal server, extended with what deploying and calling an app sends (modal 1.6.4).

`modal deploy` (RPCs in the order of shared/reference/modal-protocol.md) and the app management
RPCs the deploy stage and the `modal app` CLI use: AppDeploymentHistory, AppRollback, AppRollover,
AppStop, AppGetLifecycle, and an AppGetByDeploymentName that, like Modal's, finds only a deployed
app (a stopped one comes back as `previous_app_id`). Calling a deployed function, and the
"container" that runs it, are `modal_calls.FunctionCallRpcs`; what is kept about deployed apps
and the machine they run on is in `modal_deploy_state`. Anything else is still answered
UNIMPLEMENTED and recorded.

Every publish, rollback and rollover appends a version to the app's history, newest last here and
newest first on the wire, as `modal app history` shows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_calls import FunctionCallRpcs
from tests.fakes.modal_deploy_state import (
    FakeFunctionDefinition,
    FakeRuntime,
    FakeVersion,
    deployed_app,
    deployments,
)
from tests.fakes.modal_deploy_state import (
    live_version as live_version,  # re-exported: tests find the live version here
)
from tests.fakes.modal_fixtures import CI_SERVICE_USER, FakeModal
from tests.fakes.modal_rpc_base import Caller
from tests.fakes.modal_server import FakeModalServer, FakeModalServicer
from tests.fakes.modal_state import FakeApp, FakeModalState, new_id

IMAGE_BUILDER_VERSION = (
    "2025.06"  # one that modal 1.6.4 supports; a deploy reads it per environment
)
_PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)")


class FakeModalDeployServicer(FunctionCallRpcs, FakeModalServicer):
    """The base fake plus deploy, app management and (`FunctionCallRpcs`) function calls."""

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
        app = deployed_app(self.state, env.name, request.name)
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
            # As the client declared them (modal/_functions.py:1123-1124, 1163-1164).
            supported_input_formats=first.supported_input_formats,
            supported_output_formats=first.supported_output_formats,
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
        other = deployed_app(self.state, app.environment, request.name)
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
