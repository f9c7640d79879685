"""After a deploy: the smoke job on exactly the version just deployed, and the rollback of a
version that fails it.

The smoke job is `run_gpu_job({"job": "healthcheck"})`: a passing one reports `ready`. It is
called with CBOR and its answer is decoded only as CBOR, never unpickled (`function_call`): this
process holds the deploy credentials, and the version called may be anyone's. A failure
rolls the app back to the version that was live before (AppRollback), or stops it when there was
none, and becomes one `DeployError` that says what was deployed, what the smoke job said, what is
live now and how to investigate. What the job says is redacted of the Modal token and clipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from infra.core.errors import DeployError, FunctionCallError, ModalCallError
from infra.core.secrets import redact
from infra.modal_hook.client import CallPolicy, ModalApi, credentials_from_env, run_modal
from infra.modal_hook.function_call import call_function
from infra.modal_hook.live_app import LiveVersion, Target, find_live
from modal_app import contract

log = logging.getLogger(__name__)

SAID_LIMIT = 1500


@dataclass(frozen=True)
class Smoke:
    passed: bool
    said: str  # a summary on success, what went wrong otherwise; never a secret


def judge(result: Any) -> Smoke:
    """A passing healthcheck reports `ready`; anything else fails, with its own reasons."""
    if not isinstance(result, Mapping):
        return Smoke(False, f"it returned {type(result).__name__}, not the healthcheck report")
    if result.get("status") == contract.REFUSED:  # the app returns refusals rather than raise them
        return Smoke(False, f"it refused the smoke payload: {result.get('message')}")
    if result.get("ready") is True:
        device = result.get("device") or "an unknown device"
        return Smoke(True, f"ready on {device} ({result.get('backend')})")
    problems = [str(p) for p in result.get("problems") or []]
    listed = "; ".join(problems) if problems else "no reason given"
    return Smoke(False, f"it reported not ready: {listed}")


def clip(text: str) -> str:
    return text if len(text) <= SAID_LIMIT else text[: SAID_LIMIT - 3] + "..."


def run_smoke(policy: CallPolicy, target: Target, live: LiveVersion, timeout_s: float) -> Smoke:
    """Run the smoke job on exactly the version just deployed and judge its answer."""
    smoke_policy = replace(policy, deadline_s=timeout_s)

    async def operation(api: ModalApi) -> Smoke:
        try:
            result = await call_function(
                api,
                app=target.app,
                function=target.function,
                version=live.version,
                environment=target.environment,
                payload=contract.SMOKE_PAYLOAD,
            )
        except FunctionCallError as error:  # it failed, or its output was refused
            return Smoke(False, str(error))
        except ModalCallError:
            raise
        except Exception as exc:  # a bug here must still roll the version back
            return Smoke(False, f"it could not be judged ({type(exc).__name__}: {exc})")
        return judge(result)

    try:
        smoke = run_modal(f"run the smoke job of {target.where}", operation, policy=smoke_policy)
    except ModalCallError as error:
        smoke = Smoke(False, f"it could not be run: {error}")
    credentials = credentials_from_env()
    tokens = (credentials.token_id.reveal(), credentials.token_secret.reveal())
    return Smoke(smoke.passed, clip(redact(smoke.said, tokens)))


def rolled_back(
    policy: CallPolicy,
    target: Target,
    before: LiveVersion | None,
    failed: LiveVersion,
    smoke: Smoke,
    *,
    recorded: bool,
) -> DeployError:
    """Undo a deploy whose smoke job failed; the error says what happened and what is live."""
    first = before is None or before.app_id != failed.app_id

    async def operation(api: ModalApi) -> LiveVersion | None:
        from modal_proto import api_pb2

        if first:
            request = api_pb2.AppStopRequest(
                app_id=failed.app_id, source=api_pb2.APP_STOP_SOURCE_PYTHON_CLIENT
            )
            await api.call("AppStop", request)
        else:
            assert before is not None
            request = api_pb2.AppRollbackRequest(app_id=failed.app_id, version=before.version)
            await api.call("AppRollback", request)
        return await find_live(api, target.environment, target.app)

    what = "rolled back" if not first else "stopped (it was the app's first deploy)"
    log.error("%s: smoke job failed on %s; %s", target.where, failed.describe(), what)
    header = (
        f"The deploy of {target.where} failed its smoke test, "
        f"run_gpu_job({json.dumps(dict(contract.SMOKE_PAYLOAD))}).\n"
        f"  deployed:  {failed.describe()}, by this update\n"
        f"  smoke job: {smoke.said}\n"
    )
    investigate = (
        f"  Investigate: `modal app logs {target.cli}` (the failed containers' output), "
        f"`modal app history {target.cli}` (the versions); fix the cause, then run "
        "`pulumi up` again, which redeploys and reruns the smoke job. "
        + (
            "Pulumi's state still records the deployment from before this update."
            if recorded
            else "Pulumi's state records no deployment of the app."
        )
    )
    try:
        live = run_modal(f"roll back {target.where}", operation, policy=policy)
    except ModalCallError as error:
        by_hand = (
            f"`modal app rollback {target.cli} v{before.version}`"
            if not first and before is not None
            else f"`modal app stop {target.cli}`"
        )
        return DeployError(
            header + f"  live now:  {failed.describe()}, the version that FAILED: it could not be "
            f"{'rolled back' if not first else 'stopped'} ({error}).\n"
            + f"  Do it by hand now: {by_hand}.\n"
            + investigate
        )
    if first:
        now = "nothing: this was the app's first deploy, so the app was stopped"
    elif live is not None and before is not None:
        now = (
            f"v{live.version}, a rollback to {before.describe()}, the version that was live "
            "before this update"
        )
    else:
        now = "nothing (the app is not deployed after the rollback)"
    return DeployError(header + f"  live now:  {now}\n" + investigate)
