"""`ModalAppDeployment`: `modal_app/` deployed into the stack's Modal environment, smoke-tested.

What the provider guarantees, and why:
- A deploy is the real `modal deploy -m modal_app.app` (the CLI as a subprocess, run from the
  repository root), exactly what the manual guide ran, so nothing here re-implements Modal's
  packaging. The subprocess gets the Modal token in its environment, never on its command line,
  and the deploy settings (`MODAL_APP_NAME`, `RENTAGPU_GPUS`, `RENTAGPU_AWS_AUTH`) that
  `modal_app/app.py` reads; credentials it has no use for (AWS, Pulumi, GitHub) are withheld.
- It redeploys when what runs would change: the shipped source (`source_hash`, a content hash of
  the `.py` files under `modal_app/`, which is what `add_local_python_source` ships), the runtime
  secret (`secret_fingerprint`, a hash of its values, kept secret; `runtime_secret_id`, because a
  recreated secret is a new object), the deploy settings (GPUs, auth mode, function, secret name)
  or the `modal` client version. A new git revision alone redeploys nothing. When Modal sees
  nothing new to deploy (only secret values changed), a rollover restarts the containers so
  they read the new values.
- The deployment tag is the source revision, read when the deploy runs: `GITHUB_SHA` in CI, else
  `git rev-parse HEAD` of the checkout (`-dirty` when `modal_app/` has uncommitted changes), else
  `src-` and the start of the source hash. It is an output, not an input, so the offline plan
  stays the same for every commit and never runs git.
- The source is hashed again just before the deploy; if it no longer matches the planned hash
  (files changed during `pulumi up`), nothing is deployed. If the version live after the deploy
  carries another tag, someone else's deploy raced this one: nothing is tested or rolled back.
- After the deploy, the smoke job (`run_gpu_job({"job": "healthcheck"})`, pinned to the version
  just deployed) must report `ready`. If not, the app is rolled back to the version that was live
  before (AppRollback), or stopped when there was none, and the update fails with a message that
  says which version is live, what the smoke job said, and how to investigate. Pulumi's state is
  not changed by a failed update, so the next `pulumi up` tries again.
- A deploy Modal refuses (a missing runtime secret, for one) leaves the live version untouched;
  the error says why and which version is still live.
- `read` (`pulumi refresh`) reports a stopped or deleted app as gone, and a live version other
  than the one this stack deployed (or a rollback to it) as drift: its `source_hash` becomes a
  marker that no source hashes to, so the next `pulumi up` redeploys the stack's source.
- `delete` stops the app; an app that is already gone is not an error.

Inputs and outputs use the same snake_case names; outputs add `app_id`, `version`,
`deployment_tag` and `smoke_summary`. Credentials come from `MODAL_TOKEN_ID`/`MODAL_TOKEN_SECRET`/
`MODAL_SERVER_URL` when a method runs; the provider holds only non-secret settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.core.errors import DeployError, ModalCallError
from infra.core.resource_types import MODAL_APP_DEPLOYMENT_NAME, MODAL_MODULE
from infra.modal_hook import app_source, validation
from infra.modal_hook.app_source import APP_MODULE, SOURCE_PACKAGE, resolve_revision, source_hash
from infra.modal_hook.client import (
    DEFAULT_POLICY,
    CallPolicy,
    ModalApi,
    credentials_from_env,
    run_modal,
)
from infra.modal_hook.deploy_command import run_modal_deploy, tail
from infra.modal_hook.live_app import LiveVersion, Target, find_live, live_version
from infra.modal_hook.schema import Field, Schema, SchemaProvider, identity_from
from infra.modal_hook.secret import lookup_secret
from infra.modal_hook.smoke import rolled_back, run_smoke
from modal_app import contract

log = logging.getLogger(__name__)

# `read` puts this in `source_hash` when the live version is not the one this stack deployed.
DRIFT_MARKER = "drift: the live version was not deployed by this stack"


def _named(check):
    return lambda prop, value, _news: check(prop, value)


SCHEMA = Schema(
    (
        # Another name or environment is another app: deploy it, then stop the old one.
        Field("environment_name", check=_named(validation.environment_name), change="replace"),
        Field(
            "app_name",
            check=lambda p, v, _: validation.object_name(p, v, "app"),
            change="replace",
        ),
        # Everything else that would change what runs is a redeploy.
        Field("function_name", check=lambda p, v, _: validation.object_name(p, v, "function")),
        Field("gpus", check=_named(validation.gpus), normalise=list),
        Field(
            "auth_mode",
            check=lambda p, v, _: validation.choice(p, v, contract.AUTH_MODES),
        ),
        Field(
            "runtime_secret_name",
            check=lambda p, v, _: validation.object_name(p, v, "secret"),
        ),
        Field("runtime_secret_id", check=_named(validation.text)),
        Field("source_hash", check=_named(validation.sha256_digest)),
        # Secret whatever the caller marked: it is derived from the secret's values.
        Field("secret_fingerprint", check=_named(validation.sha256_digest), secret=True),
        Field("modal_version", check=_named(validation.text)),
        Field("app_id", output=True),
        Field("version", output=True),
        Field("deployment_tag", output=True),
        Field("smoke_summary", output=True),
    )
)


@dataclass(frozen=True)
class ModalAppDeploymentArgs:
    environment_name: pulumi.Input[str]
    app_name: pulumi.Input[str]
    function_name: pulumi.Input[str]
    gpus: pulumi.Input[Sequence[str]]
    auth_mode: pulumi.Input[str]
    runtime_secret_name: pulumi.Input[str]
    runtime_secret_id: pulumi.Input[str]
    # secret_fingerprint(runtime secret values); marked secret by the resource whatever it gets
    secret_fingerprint: pulumi.Input[str]
    source_hash: pulumi.Input[str]
    modal_version: pulumi.Input[str]


class ModalAppDeploymentProvider(SchemaProvider):
    """Dynamic provider for `ModalAppDeployment`; holds only non-secret settings.

    `source_root` is None in real use (the checkout this module lives in); tests point it at a
    copy of the repository. Timeouts: a first deploy builds the image (torch), and a smoke job
    waits for a GPU container to start, so both get minutes, not the RPC policy's seconds.
    """

    schema = SCHEMA

    def __init__(
        self,
        policy: CallPolicy = DEFAULT_POLICY,
        *,
        deploy_timeout_s: float = 30 * 60,
        smoke_timeout_s: float = 15 * 60,
        source_root: str | None = None,
    ) -> None:
        super().__init__(policy)
        self.deploy_timeout_s = deploy_timeout_s
        self.smoke_timeout_s = smoke_timeout_s
        self.source_root = source_root

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._deploy(props, recorded=False)
        return CreateResult(id_=f"{props['environment_name']}/{props['app_name']}", outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._deploy(news, recorded=True))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        environment, app = identity_from(id_, props, ("environment_name", "app_name"))
        live = live_version(
            self.policy, environment, app, f"read Modal app '{app}' in '{environment}'"
        )
        if live is None:
            log.warning("Modal app %r in %r is not deployed", app, environment)
            return ReadResult(id_="", outs={})
        outs = {
            **props,
            "environment_name": environment,
            "app_name": app,
            "app_id": live.app_id,
            "version": live.version,
            "deployment_tag": live.tag,
        }
        recorded = props.get("version")
        same = live.app_id == props.get("app_id") and recorded in (
            live.version,
            live.rollback_version,  # the rollback after a failed update restores what is recorded
        )
        if not same:
            log.warning(
                "Modal app %r in %r: %s is live, not the v%s this stack deployed",
                app,
                environment,
                live.describe(),
                recorded,
            )
            outs["source_hash"] = DRIFT_MARKER
            outs["smoke_summary"] = ""
        return ReadResult(id_=id_, outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        environment, app = identity_from(id_, props, ("environment_name", "app_name"))

        async def operation(api: ModalApi) -> None:
            from modal_proto import api_pb2

            live = await find_live(api, environment, app)
            if live is None:
                log.info("Modal app %r in %r is already stopped", app, environment)
                return
            log.warning("stopping Modal app %r in %r", app, environment)
            request = api_pb2.AppStopRequest(
                app_id=live.app_id, source=api_pb2.APP_STOP_SOURCE_PYTHON_CLIENT
            )
            await api.call("AppStop", request)

        run_modal(f"stop Modal app '{app}' in '{environment}'", operation, policy=self.policy)

    # The deploy.
    def _deploy(self, props: Mapping[str, Any], *, recorded: bool) -> dict[str, Any]:
        """Deploy, smoke-test, roll back on failure. `recorded`: the state holds a deployment."""
        target = Target.from_props(props)
        root = Path(self.source_root) if self.source_root else app_source.PROJECT_ROOT
        shipped = source_hash(root)
        if shipped != props["source_hash"]:
            raise DeployError(
                f"Refusing to deploy {target.where}: {root / SOURCE_PACKAGE} changed after "
                "the program hashed it (files edited while `pulumi up` ran?). Nothing was "
                "deployed; run `pulumi up` again."
            )
        tag = resolve_revision(root, os.environ, shipped)
        before = self._live(target)

        log.info("deploying %s as tag %s (modal deploy -m %s)", target.where, tag, APP_MODULE)
        run = run_modal_deploy(
            root=root,
            environ=os.environ,
            credentials=credentials_from_env(),
            environment=target.environment,
            app_name=target.app,
            gpus=target.gpus,
            auth_mode=target.auth_mode,
            tag=tag,
            timeout_s=self.deploy_timeout_s,
        )
        if not run.succeeded:
            raise self._refused(target, before, run.output, run.exit_text)
        after = self._checked_live(target, before, tag)
        log.info("%s is live as %s; running the smoke job", target.where, after.describe())

        smoke = run_smoke(self.policy, target, after, self.smoke_timeout_s)
        if not smoke.passed:
            raise rolled_back(self.policy, target, before, after, smoke, recorded=recorded)
        log.info("smoke job passed on %s: %s", after.describe(), smoke.said)
        return {
            **{name: props.get(name) for name in SCHEMA.names(inputs_only=True)},
            "app_id": after.app_id,
            "version": after.version,
            "deployment_tag": after.tag or tag,
            "smoke_summary": smoke.said,
        }

    def _checked_live(self, target: Target, before: LiveVersion | None, tag: str) -> LiveVersion:
        """The version this deploy made live; a rollover when Modal saw nothing new to deploy."""
        rolled_over = False
        try:
            after = self._live(target)
            if after is not None and before is not None and after == before:
                rolled_over = True
                # Modal skips a deploy in which it sees no change (say, only secret values
                # changed); a rollover starts fresh containers, which read the secret's values.
                after = self._rollover(target, after)
        except ModalCallError as error:
            # The deploy went through but could not be checked: a version may be live that no
            # smoke job has run on. Say so, rather than only that a lookup failed.
            raise DeployError(
                f"`modal deploy` of {target.where} as tag {tag} finished, but checking what is "
                f"live failed ({error}). The new version may be live without a smoke test. Run "
                f"`modal app history {target.cli}` to see what is live, then `pulumi up` again "
                "(it redeploys and smoke-tests)."
            ) from None
        if after is None:
            raise DeployError(
                f"`modal deploy` of {target.where} reported success, but no version of the app "
                f"is live. Check `modal app history {target.cli}` and run `pulumi up` again."
            )
        if not rolled_over and after.tag != tag:
            # Someone else's deploy landed meanwhile: smoke-testing (or rolling back) that one
            # would be acting on a version this update never made.
            raise DeployError(
                f"Deployed {target.where} as tag {tag}, but {after.describe()} is live: another "
                "deploy of the app ran at the same time. Nothing was smoke-tested or rolled "
                f"back. Check `modal app history {target.cli}`, then run `pulumi up` again."
            )
        return after

    def _refused(
        self, target: Target, before: LiveVersion | None, output: str, exit_text: str
    ) -> DeployError:
        """The error for a deploy that did not go through: why, and what is live now."""
        missing = self._secret_problem(target)
        try:
            live = self._live(target)
        except ModalCallError:
            live = None
        if live is None:
            now = "No version of the app is live."
        elif before is not None and live == before:
            now = f"Nothing was deployed: {live.describe()} is still live, untouched."
        else:
            now = f"{live.describe()} is live now."
        if missing is not None:
            return DeployError(
                f"Could not deploy {target.where}: {missing}, and Modal refuses to deploy an "
                f"app whose secret is missing. {now} Fix: `pulumi refresh` (so the stack sees "
                "the secret is gone), then `pulumi up`, which writes the secret before it "
                "deploys."
            )
        lines = "\n".join(f"    {line}" for line in tail(output))
        return DeployError(
            f"Could not deploy {target.where}: `modal deploy` {exit_text}. {now}\n"
            f"  Its last lines:\n{lines}\n"
            f"  Investigate: run `modal deploy -m {APP_MODULE} -e {target.environment}` from the "
            "repository root with the same MODAL_* variables; `modal app history "
            f"{target.cli}` lists the versions."
        )

    def _secret_problem(self, target: Target) -> str | None:
        """Why the runtime secret cannot serve the app, or None if it can (or cannot be told)."""
        required = contract.required_keys(target.auth_mode)

        async def operation(api: ModalApi) -> str | None:
            live = await lookup_secret(api, target.environment, target.secret_name)
            if live is None:
                return (
                    f"the runtime secret '{target.secret_name}' does not exist in environment "
                    f"'{target.environment}'"
                )
            missing = sorted(set(required) - set(live.keys))
            if missing:
                return (
                    f"the runtime secret '{target.secret_name}' lacks the key(s) "
                    f"{', '.join(missing)} that auth mode '{target.auth_mode}' needs"
                )
            return None

        try:
            return run_modal(f"check {target.where}'s secret", operation, policy=self.policy)
        except ModalCallError:
            return None

    def _live(self, target: Target) -> LiveVersion | None:
        return live_version(self.policy, target.environment, target.app, f"look up {target.where}")

    def _rollover(self, target: Target, live: LiveVersion) -> LiveVersion:
        async def operation(api: ModalApi) -> LiveVersion | None:
            from modal_proto import api_pb2

            await api.call("AppRollover", api_pb2.AppRolloverRequest(app_id=live.app_id))
            return await find_live(api, target.environment, target.app)

        log.info("%s: Modal saw no change to deploy; rolling containers over", target.where)
        rolled = run_modal(f"roll over {target.where}", operation, policy=self.policy)
        return rolled or live


class ModalAppDeployment(
    pulumi.dynamic.Resource, module=MODAL_MODULE, name=MODAL_APP_DEPLOYMENT_NAME
):
    """The GPU app deployed to Modal and smoke-tested (see the module docstring). Every property of
    SCHEMA is an output of the same name; these are the ones the program reads."""

    app_name: pulumi.Output[str]
    app_id: pulumi.Output[str]
    version: pulumi.Output[int]
    deployment_tag: pulumi.Output[str]
    smoke_summary: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        args: ModalAppDeploymentArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        provider: ModalAppDeploymentProvider | None = None,
    ) -> None:
        props = SCHEMA.props({name: getattr(args, name) for name in SCHEMA.names(inputs_only=True)})
        super().__init__(
            provider or ModalAppDeploymentProvider(), resource_name, props, SCHEMA.options(opts)
        )
