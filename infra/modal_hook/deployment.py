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

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from infra.errors import DeployError
from infra.modal_hook import validation
from infra.modal_hook.client import (
    DEFAULT_POLICY,
    SERVER_URL_VARIABLE,
    TOKEN_ID_VARIABLE,
    TOKEN_SECRET_VARIABLE,
    CallPolicy,
    Failure,
    ModalApi,
    ModalCallError,
    ModalCredentials,
    credentials_from_env,
    redact,
    run_modal,
)
from modal_app import options, settings  # the app's deploy-time and secret contracts (stdlib only)

log = logging.getLogger(__name__)

SOURCE_PACKAGE = "modal_app"
APP_MODULE = "modal_app.app"
SMOKE_PAYLOAD: Mapping[str, str] = {"job": "healthcheck"}
REVISION_VARIABLE = "GITHUB_SHA"
# `read` puts this in `source_hash` when the live version is not the one this stack deployed.
DRIFT_MARKER = "drift: the live version was not deployed by this stack"

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_SHA = re.compile(r"^[0-9a-f]{40}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_GPU = re.compile(r"^[A-Za-z0-9-]+(?::[1-8])?$")
_REDEPLOY_KEYS = (
    "function_name",
    "gpus",
    "auth_mode",
    "runtime_secret_name",
    "runtime_secret_id",
    "source_hash",
    "secret_fingerprint",
    "modal_version",
)
# What the `modal deploy` subprocess may inherit: how to run Python and reach the network, and
# nothing else. An allow-list, because the deploy runs the app module's code and the caller's
# environment may hold any credential (CI tokens, a rotation's new or old secret, cloud keys).
_INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "SYSTEMROOT",
        "VIRTUAL_ENV",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "MODAL_CONFIG_PATH",
    }
)
_INHERITED_PREFIXES = ("LC_", "PYTHON")
_OUTPUT_TAIL_LINES = 12
_SAID_LIMIT = 1500


# ---------------------------------------------------------------------------------------------
# What is deployed, and how it is named: pure functions, used by the program and the provider
# ---------------------------------------------------------------------------------------------


def shipped_files(root: Path) -> list[Path]:
    """The files `modal deploy` ships: every `.py` file of the app package (Modal's default)."""
    package = root / SOURCE_PACKAGE
    return sorted(
        path for path in package.rglob("*.py") if path.is_file() and "__pycache__" not in path.parts
    )


def source_hash(root: Path | None = None) -> str:
    """A content hash of the shipped files and their paths; changes exactly when they do."""
    root = root or _PROJECT_ROOT
    digest = hashlib.sha256(b"rentagpu modal_app source v1\0")
    for path in shipped_files(root):
        relative = path.relative_to(root).as_posix().encode()
        digest.update(relative + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def secret_fingerprint(values: Mapping[str, str]) -> str:
    """Changes whenever a runtime secret value does. Passed as a secret: it derives from them."""
    canonical = json.dumps(dict(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(b"rentagpu runtime secret v1\0" + canonical.encode()).hexdigest()


def resolve_revision(root: Path, environ: Mapping[str, str], fallback_hash: str) -> str:
    """The deployment tag: `GITHUB_SHA`, else the checkout's HEAD (+`-dirty`), else the hash."""
    sha = environ.get(REVISION_VARIABLE, "").strip().lower()
    if _SHA.fullmatch(sha):
        return sha
    head = _git(root, "rev-parse", "HEAD")
    if head is not None and _SHA.fullmatch(head):
        changes = _git(root, "status", "--porcelain", "--untracked-files=all", "--", SOURCE_PACKAGE)
        return head + ("-dirty" if changes else "")
    return "src-" + fallback_hash[:12]


def deploy_environment(
    environ: Mapping[str, str],
    credentials: ModalCredentials,
    app_name: str,
    gpus: Sequence[str],
    auth_mode: str,
) -> dict[str, str]:
    """The environment of the `modal deploy` subprocess: the caller's locale, paths and proxies
    (`_INHERITED`), the Modal token and server, and the settings `modal_app/app.py` reads. No other
    variable passes, so no credential the deploy has no use for can reach the app's code."""
    kept = {
        key: value
        for key, value in environ.items()
        if key in _INHERITED or key.startswith(_INHERITED_PREFIXES)
    }
    return {
        **kept,
        SERVER_URL_VARIABLE: credentials.server_url,
        TOKEN_ID_VARIABLE: credentials.token_id.reveal(),
        TOKEN_SECRET_VARIABLE: credentials.token_secret.reveal(),
        options.APP_NAME_VARIABLE: app_name,
        options.GPUS_VARIABLE: ",".join(gpus),
        options.AUTH_MODE_VARIABLE: auth_mode,
        "NO_COLOR": "1",  # plain text, for the error message that quotes its last lines
        "TERM": "dumb",
        "COLUMNS": "200",
    }


def _git(root: Path, *args: str) -> str | None:
    # Local only: rev-parse and status never touch a remote.
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


# ---------------------------------------------------------------------------------------------
# The resource
# ---------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _Target:
    environment: str
    app: str
    function: str
    secret_name: str
    auth_mode: str
    gpus: tuple[str, ...]

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> _Target:
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
class _Live:
    """The app's live deployment: its id, version number and tag."""

    app_id: str
    version: int
    tag: str
    rollback_version: int = 0  # set when this version is a rollback to that one

    def describe(self) -> str:
        tag = f" (tag {self.tag})" if self.tag else ""
        return f"v{self.version}{tag}"


@dataclass(frozen=True)
class _Smoke:
    passed: bool
    said: str  # a summary on success, what went wrong otherwise; never a secret


class ModalAppDeploymentProvider(ResourceProvider):
    """Dynamic provider for `ModalAppDeployment`; holds only non-secret settings.

    `source_root` is None in real use (the checkout this module lives in); tests point it at a
    copy of the repository. Timeouts: a first deploy builds the image (torch), and a smoke job
    waits for a GPU container to start, so both get minutes, not the RPC policy's seconds.
    """

    def __init__(
        self,
        policy: CallPolicy = DEFAULT_POLICY,
        *,
        deploy_timeout_s: float = 30 * 60,
        smoke_timeout_s: float = 15 * 60,
        source_root: str | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.deploy_timeout_s = deploy_timeout_s
        self.smoke_timeout_s = smoke_timeout_s
        self.source_root = source_root

    # -- the contract ----------------------------------------------------------------------
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        gpus = news.get("gpus")
        problems = [
            *validation.environment_name("environment_name", news.get("environment_name")),
            *validation.object_name("app_name", news.get("app_name"), "app"),
            *validation.object_name("function_name", news.get("function_name"), "function"),
            *validation.object_name(
                "runtime_secret_name", news.get("runtime_secret_name"), "secret"
            ),
            *_gpu_problems(gpus),
            *_choice("auth_mode", news.get("auth_mode"), settings.AUTH_MODES),
            *_hash_problems("source_hash", news.get("source_hash")),
            *_hash_problems("secret_fingerprint", news.get("secret_fingerprint")),
            *_text_problems("runtime_secret_id", news.get("runtime_secret_id")),
            *_text_problems("modal_version", news.get("modal_version")),
        ]
        inputs = {key: news.get(key) for key in ("environment_name", "app_name", *_REDEPLOY_KEYS)}
        if isinstance(gpus, list | tuple):
            inputs["gpus"] = list(gpus)
        return CheckResult(inputs, [CheckFailure(prop, reason) for prop, reason in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Another name or environment is another app: deploy it, then stop the old one.
        replaces = [
            k for k in ("environment_name", "app_name") if _differs(olds.get(k), news.get(k))
        ]
        changed = [k for k in _REDEPLOY_KEYS if _differs(olds.get(k), news.get(k))]
        return DiffResult(
            changes=bool(replaces or changed),
            replaces=replaces,
            stables=[],
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._deploy(props, recorded=False)
        return CreateResult(id_=f"{props['environment_name']}/{props['app_name']}", outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._deploy(news, recorded=True))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        environment, app = _name_from(id_, props)
        live = self._live(environment, app, f"read Modal app '{app}' in '{environment}'")
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
        environment, app = _name_from(id_, props)

        async def operation(api: ModalApi) -> None:
            from modal_proto import api_pb2

            live = await _find_live(api, environment, app)
            if live is None:
                log.info("Modal app %r in %r is already stopped", app, environment)
                return
            log.warning("stopping Modal app %r in %r", app, environment)
            request = api_pb2.AppStopRequest(
                app_id=live.app_id, source=api_pb2.APP_STOP_SOURCE_PYTHON_CLIENT
            )
            await api.call("AppStop", request)

        run_modal(f"stop Modal app '{app}' in '{environment}'", operation, policy=self.policy)

    # -- the deploy ------------------------------------------------------------------------
    def _deploy(self, props: Mapping[str, Any], *, recorded: bool) -> dict[str, Any]:
        """Deploy, smoke-test, roll back on failure. `recorded`: the state holds a deployment."""
        target = _Target.from_props(props)
        root = Path(self.source_root) if self.source_root else _PROJECT_ROOT
        shipped = source_hash(root)
        if shipped != props["source_hash"]:
            raise DeployError(
                f"Refusing to deploy {target.where}: {root / SOURCE_PACKAGE} changed after "
                "the program hashed it (files edited while `pulumi up` ran?). Nothing was "
                "deployed; run `pulumi up` again."
            )
        tag = resolve_revision(root, os.environ, shipped)
        before = self._live(target.environment, target.app, f"look up {target.where}")

        log.info("deploying %s as tag %s (modal deploy -m %s)", target.where, tag, APP_MODULE)
        self._run_modal_deploy(target, tag, root, before)
        rolled_over = False
        try:
            after = self._live(target.environment, target.app, f"look up {target.where}")
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
        log.info("%s is live as %s; running the smoke job", target.where, after.describe())

        smoke = self._smoke(target, after)
        if not smoke.passed:
            raise self._rolled_back(target, before, after, smoke, recorded=recorded)
        log.info("smoke job passed on %s: %s", after.describe(), smoke.said)
        return {
            **{key: props.get(key) for key in ("environment_name", "app_name", *_REDEPLOY_KEYS)},
            "app_id": after.app_id,
            "version": after.version,
            "deployment_tag": after.tag or tag,
            "smoke_summary": smoke.said,
        }

    def _run_modal_deploy(
        self, target: _Target, tag: str, root: Path, before: _Live | None
    ) -> None:
        credentials = credentials_from_env()
        environ = deploy_environment(
            os.environ, credentials, target.app, target.gpus, target.auth_mode
        )
        command = [
            sys.executable,
            "-m",
            "modal",
            "deploy",
            "-m",
            APP_MODULE,
            "--env",
            target.environment,
            "--name",
            target.app,
            "--tag",
            tag,
        ]
        tokens = (credentials.token_id.reveal(), credentials.token_secret.reveal())
        try:
            result = subprocess.run(
                command,
                cwd=root,
                env=environ,
                capture_output=True,
                text=True,
                timeout=self.deploy_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            output, exit_text = "", f"did not finish within {self.deploy_timeout_s:g} s"
        else:
            if result.returncode == 0:
                for line in _tail(redact(result.stdout, tokens)):
                    log.info("modal deploy: %s", line)
                return
            output = redact(result.stdout + "\n" + result.stderr, tokens)
            exit_text = f"exited {result.returncode}"
        raise self._refused(target, before, output, exit_text)

    def _refused(
        self, target: _Target, before: _Live | None, output: str, exit_text: str
    ) -> DeployError:
        """The error for a deploy that did not go through: why, and what is live now."""
        missing = self._secret_problem(target)
        live = self._live_or_none(target)
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
        lines = "\n".join(f"    {line}" for line in _tail(output))
        return DeployError(
            f"Could not deploy {target.where}: `modal deploy` {exit_text}. {now}\n"
            f"  Its last lines:\n{lines}\n"
            f"  Investigate: run `modal deploy -m {APP_MODULE} -e {target.environment}` from the "
            "repository root with the same MODAL_* variables; `modal app history "
            f"{target.cli}` lists the versions."
        )

    def _secret_problem(self, target: _Target) -> str | None:
        """Why the runtime secret cannot serve the app, or None if it can (or cannot be told)."""
        from infra.modal_hook.secret import _lookup  # the same lookup the secret's read uses

        required = settings.required_keys(target.auth_mode)

        async def operation(api: ModalApi) -> str | None:
            live = await _lookup(api, target.environment, target.secret_name)
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

    # -- after the deploy ------------------------------------------------------------------
    def _live(self, environment: str, app: str, action: str) -> _Live | None:
        async def operation(api: ModalApi) -> _Live | None:
            return await _find_live(api, environment, app)

        return run_modal(action, operation, policy=self.policy)

    def _live_or_none(self, target: _Target) -> _Live | None:
        try:
            return self._live(target.environment, target.app, f"look up {target.where}")
        except ModalCallError:
            return None

    def _rollover(self, target: _Target, live: _Live) -> _Live:
        async def operation(api: ModalApi) -> _Live | None:
            from modal_proto import api_pb2

            await api.call("AppRollover", api_pb2.AppRolloverRequest(app_id=live.app_id))
            return await _find_live(api, target.environment, target.app)

        log.info("%s: Modal saw no change to deploy; rolling containers over", target.where)
        rolled = run_modal(f"roll over {target.where}", operation, policy=self.policy)
        return rolled or live

    def _smoke(self, target: _Target, live: _Live) -> _Smoke:
        """Run the smoke job on exactly the version just deployed and judge its answer."""
        policy = replace(self.policy, deadline_s=self.smoke_timeout_s)

        async def operation(api: ModalApi) -> _Smoke:
            from modal._functions import _Function

            function = _Function.from_name(
                target.app,
                target.function,
                version=live.version,
                environment_name=target.environment,
                client=api._client,  # noqa: SLF001 - the connection run_modal opened
            )
            try:
                result = await function.remote(dict(SMOKE_PAYLOAD))
            except Exception as exc:  # the job raised, or its container never started
                return _Smoke(False, f"it raised {type(exc).__name__}: {exc}")
            return _judge(result)

        try:
            smoke = run_modal(f"run the smoke job of {target.where}", operation, policy=policy)
        except ModalCallError as error:
            smoke = _Smoke(False, f"it could not be run: {error}")
        credentials = credentials_from_env()
        tokens = (credentials.token_id.reveal(), credentials.token_secret.reveal())
        return _Smoke(smoke.passed, _clip(redact(smoke.said, tokens)))

    def _rolled_back(
        self,
        target: _Target,
        before: _Live | None,
        failed: _Live,
        smoke: _Smoke,
        *,
        recorded: bool,
    ) -> DeployError:
        """Undo a deploy whose smoke job failed; the error says what happened and what is live."""
        first = before is None or before.app_id != failed.app_id

        async def operation(api: ModalApi) -> _Live | None:
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
            return await _find_live(api, target.environment, target.app)

        what = "rolled back" if not first else "stopped (it was the app's first deploy)"
        log.error("%s: smoke job failed on %s; %s", target.where, failed.describe(), what)
        header = (
            f"The deploy of {target.where} failed its smoke test, "
            f"run_gpu_job({json.dumps(dict(SMOKE_PAYLOAD))}).\n"
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
            live = run_modal(f"roll back {target.where}", operation, policy=self.policy)
        except ModalCallError as error:
            by_hand = (
                f"`modal app rollback {target.cli} v{before.version}`"
                if not first and before is not None
                else f"`modal app stop {target.cli}`"
            )
            return DeployError(
                header
                + f"  live now:  {failed.describe()}, the version that FAILED: it could not be "
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


class ModalAppDeployment(pulumi.dynamic.Resource, module="rentagpu", name="ModalAppDeployment"):
    """The GPU app deployed to Modal and smoke-tested (see the module docstring)."""

    environment_name: pulumi.Output[str]
    app_name: pulumi.Output[str]
    function_name: pulumi.Output[str]
    gpus: pulumi.Output[list[str]]
    auth_mode: pulumi.Output[str]
    runtime_secret_name: pulumi.Output[str]
    runtime_secret_id: pulumi.Output[str]
    secret_fingerprint: pulumi.Output[str]
    source_hash: pulumi.Output[str]
    modal_version: pulumi.Output[str]
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
        props = {
            "environment_name": args.environment_name,
            "app_name": args.app_name,
            "function_name": args.function_name,
            "gpus": args.gpus,
            "auth_mode": args.auth_mode,
            "runtime_secret_name": args.runtime_secret_name,
            "runtime_secret_id": args.runtime_secret_id,
            # Secret whatever the caller marked: it is derived from the secret's values.
            "secret_fingerprint": pulumi.Output.secret(args.secret_fingerprint),
            "source_hash": args.source_hash,
            "modal_version": args.modal_version,
            "app_id": None,
            "version": None,
            "deployment_tag": None,
            "smoke_summary": None,
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["secret_fingerprint"])
        opts = pulumi.ResourceOptions.merge(opts, secret_outputs)
        super().__init__(provider or ModalAppDeploymentProvider(), resource_name, props, opts)


# ---------------------------------------------------------------------------------------------
# Helpers shared by the provider methods
# ---------------------------------------------------------------------------------------------


async def _find_live(api: ModalApi, environment: str, app: str) -> _Live | None:
    """The app's live deployment, or None when no version is deployed (or the environment is gone).

    AppGetByDeploymentName names only a deployed app; its history lists versions newest first.
    """
    from modal_proto import api_pb2

    request = api_pb2.AppGetByDeploymentNameRequest(name=app, environment_name=environment)
    try:
        reply = await api.call("AppGetByDeploymentName", request)
    except ModalCallError as exc:
        if exc.failure is Failure.NOT_FOUND:
            return None
        raise
    if not reply.app_id:
        return None
    history = await api.call(
        "AppDeploymentHistory", api_pb2.AppDeploymentHistoryRequest(app_id=reply.app_id)
    )
    entries = list(history.app_deployment_histories)
    if not entries:
        return _Live(reply.app_id, reply.lifecycle.version, "")
    number = history.production_app_version or max(e.version for e in entries)
    entry = next((e for e in entries if e.version == number), entries[0])
    return _Live(reply.app_id, entry.version, entry.tag, entry.rollback_version)


def _judge(result: Any) -> _Smoke:
    """A passing healthcheck reports `ready`; anything else fails, with its own reasons."""
    if not isinstance(result, Mapping):
        return _Smoke(False, f"it returned {type(result).__name__}, not the healthcheck report")
    if result.get("ready") is True:
        device = result.get("device") or "an unknown device"
        return _Smoke(True, f"ready on {device} ({result.get('backend')})")
    problems = [str(p) for p in result.get("problems") or []]
    listed = "; ".join(problems) if problems else "no reason given"
    return _Smoke(False, f"it reported not ready: {listed}")


def _tail(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return lines[-_OUTPUT_TAIL_LINES:]


def _clip(text: str) -> str:
    return text if len(text) <= _SAID_LIMIT else text[: _SAID_LIMIT - 3] + "..."


def _name_from(id_: str, props: Mapping[str, Any]) -> tuple[str, str]:
    """Environment and app name from stored outputs, or from the id (`ENV/APP`) on an import."""
    environment, _, app = id_.partition("/")
    return props.get("environment_name") or environment, props.get("app_name") or app


def _differs(old: Any, new: Any) -> bool:
    if validation.is_unknown(new):
        return True
    if isinstance(new, list | tuple):
        return (
            not isinstance(old, list | tuple)
            or any(validation.is_unknown(v) for v in new)
            or list(old) != list(new)
        )
    return old != new


def _gpu_problems(value: Any) -> validation.Problems:
    if validation.is_unknown(value):
        return []
    if not isinstance(value, list | tuple) or not value:
        return [("gpus", "must list at least one GPU type, first choice first")]
    bad = [
        g
        for g in value
        if not validation.is_unknown(g) and not (isinstance(g, str) and _GPU.fullmatch(g))
    ]
    if bad:
        return [("gpus", f"{bad!r}: each must be a Modal GPU type such as 'H100' or 'A100-80GB:2'")]
    return []


def _choice(prop: str, value: Any, choices: tuple[str, ...]) -> validation.Problems:
    if validation.is_unknown(value) or value in choices:
        return []
    return [(prop, f"must be one of: {', '.join(choices)}")]


def _hash_problems(prop: str, value: Any) -> validation.Problems:
    # The message never quotes the value: secret_fingerprint is derived from secrets.
    if validation.is_unknown(value) or (isinstance(value, str) and _HASH.fullmatch(value)):
        return []
    return [(prop, "must be a sha256 hex digest (64 lowercase hex characters)")]


def _text_problems(prop: str, value: Any) -> validation.Problems:
    if validation.is_unknown(value) or (isinstance(value, str) and value):
        return []
    return [(prop, "must be a non-empty string")]
