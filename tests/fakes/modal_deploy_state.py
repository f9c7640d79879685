"""What the fake Modal server keeps about deployed apps, and the machine their code runs on.

Shared by the deploy RPCs (`modal_deploy`) and the function-call RPCs (`modal_calls`): each app's
versions (`FakeAppDeployments`, in `FakeApp.extra["deploy"]`), the functions a version runs, and
`FakeRuntime`, which a test changes to alter what deployed code finds or what a call returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modal_proto import api_pb2

from tests.fakes.modal_state import FakeApp, FakeModalState


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
    input_format: int
    output: api_pb2.FunctionGetOutputsItem | None  # None until its input arrives


@dataclass
class FakeRuntime:
    """What deployed code finds when it runs, and what it did. Tests change it between calls."""

    gpu_available: bool = True
    skip_next_publish: bool = False  # answer the next AppPublish as Modal does a no-op deploy
    crashes: list[BaseException] = field(default_factory=list)  # raised by the next calls
    # Outputs that replace the next calls' real ones, as a compromised container or server (or a
    # version someone else published) would send them.
    forged_outputs: list[api_pb2.FunctionGetOutputsItem] = field(default_factory=list)
    pipeline_inputs: bool = True  # False: FunctionMap leaves the input to FunctionPutInputs
    withhold_outputs: bool = False  # True: every call looks still running
    files: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)  # mount id -> path -> sha256
    images: dict[str, api_pb2.Image] = field(default_factory=dict)
    image_packages: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: dict[str, FakeCall] = field(default_factory=dict)

    def crash_next_calls(self, exception: BaseException, times: int = 1) -> None:
        """Make the next `times` calls raise `exception` inside the "container"."""
        self.crashes.extend([exception] * times)

    def forge_next_output(self, output: api_pb2.FunctionGetOutputsItem) -> None:
        """Make the next call answer `output` (its `idx` and `input_id` are filled in)."""
        self.forged_outputs.append(output)

    def payloads(self) -> list[Any]:
        return [call.payload for call in self.calls.values()]

    def input_formats(self) -> list[int]:
        return [call.input_format for call in self.calls.values()]

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


def deployed_app(state: FakeModalState, environment: str, name: str) -> FakeApp | None:
    return next(
        (
            a
            for a in state.apps_in(environment)
            if a.name == name and a.state == api_pb2.APP_STATE_DEPLOYED
        ),
        None,
    )


def live_version(state: FakeModalState, environment: str, name: str) -> FakeVersion | None:
    """The version a user sees live (`modal app history`'s first row), or None if not deployed."""
    with state.lock:
        app = deployed_app(state, environment, name)
        return deployments(app).live if app else None
