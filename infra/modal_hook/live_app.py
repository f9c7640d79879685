"""Which version of the app is live, and which app a deployment targets.

Shared by the deployment provider (before and after a deploy, on refresh and delete) and by the
smoke test and rollback that follow a deploy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.modal_hook.client import CallPolicy, ModalApi, run_modal


@dataclass(frozen=True)
class Target:
    """The app a deployment is about, and the settings it is deployed with."""

    environment: str
    app: str
    function: str
    secret_name: str
    auth_mode: str
    gpus: tuple[str, ...]

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> Target:
        return cls(
            environment=props["environment_name"],
            app=props["app_name"],
            function=props["function_name"],
            secret_name=props["runtime_secret_name"],
            auth_mode=props["auth_mode"],
            gpus=tuple(props["gpus"]),
        )

    @property
    def where(self) -> str:
        return f"Modal app '{self.app}' in environment '{self.environment}'"

    @property
    def cli(self) -> str:
        return f"{self.app} -e {self.environment}"


@dataclass(frozen=True)
class LiveVersion:
    """The app's live deployment: its id, version number and tag."""

    app_id: str
    version: int
    tag: str
    rollback_version: int = 0  # set when this version is a rollback to that one

    def describe(self) -> str:
        tag = f" (tag {self.tag})" if self.tag else ""
        return f"v{self.version}{tag}"


async def find_live(api: ModalApi, environment: str, app: str) -> LiveVersion | None:
    """The app's live deployment, or None when no version is deployed (or the environment is gone).

    AppGetByDeploymentName names only a deployed app; its history lists versions newest first.
    """
    from modal_proto import api_pb2

    request = api_pb2.AppGetByDeploymentNameRequest(name=app, environment_name=environment)
    reply = await api.call_or_none("AppGetByDeploymentName", request)
    if reply is None or not reply.app_id:
        return None
    history = await api.call(
        "AppDeploymentHistory", api_pb2.AppDeploymentHistoryRequest(app_id=reply.app_id)
    )
    entries = list(history.app_deployment_histories)
    if not entries:
        return LiveVersion(reply.app_id, reply.lifecycle.version, "")
    number = history.production_app_version or max(e.version for e in entries)
    entry = next((e for e in entries if e.version == number), entries[0])
    return LiveVersion(reply.app_id, entry.version, entry.tag, entry.rollback_version)


def live_version(policy: CallPolicy, environment: str, app: str, action: str) -> LiveVersion | None:
    """`find_live` on a connection of its own."""

    async def operation(api: ModalApi) -> LiveVersion | None:
        return await find_live(api, environment, app)

    return run_modal(action, operation, policy=policy)
