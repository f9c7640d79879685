"""What the rotation and incident tests drive: a stack as an in-process `pulumi up` plus its config,
IAM resources run for real against moto, and the checks a user would make by hand.

`InProcessStack` is the test `StackDriver`: its config is the dict `pulumi config` would hold, its
`up` is `tests.fakes.engine.InProcessEngine` (Modal resources against the fake Modal server, the
runtime IAM user, policy and access keys against moto when `iam_handlers` are given, everything
else synthesized), and `github_secret(name)` is what GitHub would hold after the last successful
`up`. Checks use the real `modal` SDK and boto3, never the code under test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from nacl.public import SealedBox

from infra.core.config import RawValue, parse_config
from infra.core.errors import RentagpuError, StackUpError
from infra.tools.offline import Rendering, mock_github_key
from infra.tools.runbook.driver import StackDriver, StateResource
from tests.fakes.aws_fixtures import MotoServer
from tests.fakes.engine import InProcessEngine, ResourceHandler

GITHUB_SECRET_TYPES = (
    "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret",
    "github:index/actionsSecret:ActionsSecret",
)
_PATH = re.compile(r'^(?P<top>[^.\[]+)(?:\.(?P<dotted>.+)|\["(?P<quoted>.+)"\])$')


def _split_path(key: str) -> tuple[str, str]:
    namespace, _, rest = key.partition(":")
    match = _PATH.match(rest)
    assert match, f"not a config path this fake understands: {key}"
    return f"{namespace}:{match['top']}", match["dotted"] or match["quoted"]


class InProcessStack:
    """A `StackDriver` over `InProcessEngine` and a config dict (see the module docstring)."""

    def __init__(
        self, stack: str, config: Mapping[str, RawValue], engine: InProcessEngine | None = None
    ) -> None:
        self.stack = stack
        self.config: dict[str, RawValue] = dict(config)
        self.engine = engine or InProcessEngine()
        self.rendering: Rendering | None = None
        self.ups = 0
        self.fail_next_up: str | None = None
        # Called right after a successful `up`: the moment between the update and revocation.
        self.after_up: Callable[[], None] | None = None

    def get_config(self) -> dict[str, RawValue]:
        return dict(self.config)

    def set_config(self, key: str, value: str, *, secret: bool, path: bool = False) -> None:
        if not path:
            self.config[key] = RawValue(value, secret)
            return
        top, sub = _split_path(key)
        existing = self.config.get(top)
        document = json.loads(existing.value) if existing else {}
        document[sub] = value
        self.config[top] = RawValue(json.dumps(document), existing.secret if existing else secret)

    def remove_config(self, key: str, *, path: bool = False) -> None:
        if not path:
            self.config.pop(key, None)
            return
        top, sub = _split_path(key)
        existing = self.config[top]
        document = json.loads(existing.value)
        document.pop(sub, None)
        self.config[top] = RawValue(json.dumps(document), existing.secret)

    def up(self) -> None:
        self.ups += 1
        if self.fail_next_up is not None:
            reason, self.fail_next_up = self.fail_next_up, None
            raise StackUpError(f"pulumi up of stack '{self.stack}' failed: {reason}")
        try:
            result = self.engine.up(parse_config(self.stack, self.config))
        except RentagpuError as error:  # the Modal hook's errors are redacted already
            raise StackUpError(f"pulumi up of stack '{self.stack}' failed: {error}") from None
        self.rendering = result.rendering
        if self.after_up is not None:
            self.after_up()

    def outputs(self) -> dict[str, Any]:
        return dict(self.rendering.outputs) if self.rendering else {}

    def state_resources(self) -> list[StateResource]:
        """The checkpoint as `pulumi stack export --show-secrets` would show it."""
        recorded = self.engine.state
        resources = []
        seen = set()
        for r in self.rendering.resources if self.rendering else ():
            record = recorded.get(r.name)
            if record is not None:
                resources.append(StateResource(r.type, r.name, record.id, dict(record.outputs)))
            else:
                resources.append(StateResource(r.type, r.name, f"{r.name}-id", dict(r.raw_inputs)))
            seen.add(r.name)
        for name, record in recorded.items():  # created by an `up` that failed later
            if name not in seen:
                resources.append(StateResource(record.type, name, record.id, dict(record.outputs)))
        return resources

    def github_secret(self, secret_name: str) -> str | None:
        """The value GitHub holds for `secret_name`, as the last successful `up` wrote it: CI's
        tokens arrive sealed, and are opened here with the mocked GitHub's key of their place."""
        assert self.rendering is not None
        for resource in self.rendering.resources:
            if resource.type in GITHUB_SECRET_TYPES:
                inputs = resource.raw_inputs
                if inputs.get("secretName") != secret_name:
                    continue
                if inputs.get("valueEncrypted") is None:
                    return inputs.get("value")
                box = SealedBox(mock_github_key(inputs.get("environment") or "repository"))
                return box.decrypt(base64.b64decode(inputs["valueEncrypted"])).decode()
        return None


def run_cli(
    argv: list[str],
    drivers: Mapping[str, StackDriver],
    *,
    stdin: str = "",
    environ: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """`python -m infra ARGV` with these stack drivers; (exit code, everything it printed)."""
    from infra.tools.cli import build_parser
    from infra.tools.runbook.driver import Console

    args = build_parser().parse_args(argv)
    out = io.StringIO()
    try:
        console = Console(
            drivers.__getitem__, io.StringIO(stdin), out, os.environ if environ is None else environ
        )
        code = args.func(args, console)
    except RentagpuError as error:  # what infra.cli.main prints
        out.write(f"error: {error}\n")
        code = 2
    return code, out.getvalue()


def assert_never_shown(output: str, values: list[str]) -> None:
    leaked = [f"...{v[-4:]}" for v in values if v and v in output]
    assert not leaked, f"secret values (shown by their last 4) appear in the output: {leaked}"


# Modal: the checks a user would make with the SDK.


def modal_accepts(token: tuple[str, str]) -> bool:
    """Whether Modal authenticates `token` (`modal token info` with it)."""
    return modal_reach(token, None) != "rejected"


def modal_reach(token: tuple[str, str], environment: str | None) -> str:
    """What the SDK gets with `token`: "ok", "rejected" or "denied". With an environment it looks
    up the runtime secret there (what a deploy does first); without, it lists environments."""
    import modal
    from modal.exception import AuthError, NotFoundError, PermissionDeniedError

    client = modal.Client.from_credentials(*token)
    try:
        if environment is None:
            modal.Environment.objects.list(client=client)
        else:
            modal.Secret.from_name(
                "rentagpu-runtime", environment_name=environment, client=client
            ).hydrate()
    except AuthError:
        return "rejected"
    except (PermissionDeniedError, NotFoundError):
        return "denied"
    finally:
        client.close()  # from_credentials clients are not pooled: close each
    return "ok"


# AWS: the runtime IAM resources for real, and a user's checks.


class IamUserHandler:
    def __init__(self, iam: Any) -> None:
        self.iam = iam

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {"UserName": inputs["name"], "Path": inputs.get("path") or "/"}
        if inputs.get("permissionsBoundary"):
            kwargs["PermissionsBoundary"] = inputs["permissionsBoundary"]
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in (inputs.get("tags") or {}).items()]
        user = self.iam.create_user(**kwargs)["User"]
        return user["UserName"], {**inputs, "arn": user["Arn"], "uniqueId": user["UserId"]}

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        self.iam.delete_user(UserName=id_)


class IamUserPolicyHandler:
    def __init__(self, iam: Any) -> None:
        self.iam = iam

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.iam.put_user_policy(
            UserName=inputs["user"], PolicyName=inputs["name"], PolicyDocument=inputs["policy"]
        )
        return f"{inputs['user']}:{inputs['name']}", dict(inputs)

    def update(self, id_: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        return self.create("", inputs)[1]

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        self.iam.delete_user_policy(UserName=outputs["user"], PolicyName=outputs["name"])


class IamAccessKeyHandler:
    def __init__(self, iam: Any) -> None:
        self.iam = iam
        self.before_delete: Callable[[str], None] | None = None

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        key = self.iam.create_access_key(UserName=inputs["user"])["AccessKey"]
        return key["AccessKeyId"], {
            "user": inputs["user"],
            "secret": key["SecretAccessKey"],
            "status": key["Status"],
            "createDate": key["CreateDate"].isoformat(),
        }

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        if self.before_delete is not None:
            self.before_delete(id_)
        self.iam.delete_access_key(UserName=outputs["user"], AccessKeyId=id_)


DEPLOY_TYPE = "pulumi-python:dynamic/rentagpu:ModalAppDeployment"


class DeployStub:
    """Stands in for stage 4's `modal deploy` + smoke job (tested in tests/deploy/), which would
    cost seconds per `up`. Each (re)deploy runs `smoke`, if set: raising fails the `up` there,
    after the runtime secret was written and before anything the program dropped is deleted."""

    def __init__(self) -> None:
        self.deploys = 0
        self.smoke: Callable[[], None] | None = None

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return f"{inputs.get('environmentName', name)}/app", self._deploy(inputs)

    def update(self, id_: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        return self._deploy(inputs)

    def _deploy(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.smoke is not None:
            self.smoke()
        self.deploys += 1
        kept = {k: v for k, v in inputs.items() if not k.startswith("__")}
        return {**kept, "version": self.deploys, "deployment_tag": "test", "app_id": "ap-test"}

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        pass


def iam_handlers(moto: MotoServer) -> dict[str, ResourceHandler]:
    iam = moto.client("iam")
    return {
        "aws:iam/user:User": IamUserHandler(iam),
        "aws:iam/userPolicy:UserPolicy": IamUserPolicyHandler(iam),
        "aws:iam/accessKey:AccessKey": IamAccessKeyHandler(iam),
    }


def destroy_handled(engine: InProcessEngine) -> None:
    """Delete what handlers created (newest first), so the shared moto server stays clean."""
    for name in reversed(list(engine.state)):
        record = engine.state[name]
        handler = engine.handlers.get(record.type)
        if handler is not None and not record.provider_blob:
            handler.delete(record.id, record.outputs)
            del engine.state[name]
