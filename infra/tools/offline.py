"""Run the program offline: the real program under Pulumi mocks, no credentials, no network.

The mocks answer like the clouds would in shape (ARNs built from the same name functions, numeric
GitHub ids, one fixed account id) so every policy document renders in full. Each registered
resource is recorded with its inputs; values the program marked secret stay recognisable so
callers can mask them and tests can check they were marked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.core import names
from infra.core import resource_types as types
from infra.core.wire import envelope, mask_secrets, unwrap

MOCK_ACCOUNT_ID = "123456789012"
# What a plan shows for a CI token's sealed value: it is minted and sealed by `pulumi up` only.
SEALED_AT_UP = "(sealed for GitHub by pulumi up)"


@dataclass(frozen=True)
class RenderedResource:
    type: str
    name: str
    inputs: Mapping[str, Any]  # secret values replaced by infra.core.secrets.SECRET_MASK
    secret_paths: tuple[str, ...]  # dotted paths of inputs that were marked secret
    raw_inputs: Mapping[str, Any] = field(repr=False, compare=False)  # secrets unmasked
    # The explicit provider it is bound to, as (type, logical name); None for a default provider.
    provider: tuple[str, str] | None = None
    urn: str = ""  # as the engine names it: urn:pulumi:STACK::PROJECT::PARENT$...$TYPE::NAME

    def get(self, path: str) -> Any:
        """An input by dotted path ('reviewers.0.users'), from the masked inputs."""
        value: Any = self.inputs
        for part in path.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value


def _provider_of(reference: str | None) -> tuple[str, str] | None:
    """(type, logical name) from a provider reference (`URN::ID`); None for a default provider,
    whose name the engine generates (`default_6_15_0`)."""
    if not reference:
        return None
    parts = reference.rsplit("::", 1)[0].split("::")
    if len(parts) < 4 or parts[3].startswith("default"):
        return None
    return parts[2].rsplit("$", 1)[-1], parts[3]


def stable_id(kind: str, key: str) -> str:
    """A deterministic numeric id for a GitHub lookup, so plans diff cleanly between runs."""
    return str(10_000_000 + zlib.crc32(f"{kind}:{key}".encode()) % 90_000_000)


def mock_github_key(location: str) -> Any:
    """The private key of the mocked GitHub's secrets for `location` (an environment's name, or
    "repository"), derived from the name so no key is written down and tests can open what the
    program sealed. Returns a `nacl.public.PrivateKey`."""
    from nacl.public import PrivateKey

    return PrivateKey(hashlib.sha256(f"rentagpu offline GitHub key {location}".encode()).digest())


def _public_key_answer(location: str) -> dict[str, str]:
    import base64

    public = base64.b64encode(bytes(mock_github_key(location).public_key)).decode()
    return {"key": public, "keyId": stable_id("key", location), "id": stable_id("key", location)}


def mock_access_key_id(name: str) -> str:
    """A deterministic access key id shaped like AWS's (AKIA + 16 capitals or digits): the app
    validates that shape, so a deploy's smoke job would refuse anything else."""
    return "AKIA" + hashlib.sha256(name.encode()).hexdigest()[:16].upper()


def _iam_arn(kind: str, inputs: Mapping[str, Any]) -> str:
    return f"arn:aws:iam::{MOCK_ACCOUNT_ID}:{kind}{inputs.get('path') or '/'}{inputs.get('name')}"


def _outputs_for(typ: str, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """What the provider would report after create, for the properties the program reads."""
    state = dict(inputs)
    resource_id = f"{name}-id"
    if typ == types.AWS_ROLE:
        state["arn"] = _iam_arn("role", inputs)
        resource_id = str(inputs.get("name"))
    elif typ == types.AWS_POLICY:
        state["arn"] = _iam_arn("policy", inputs)
        resource_id = state["arn"]
    elif typ == types.AWS_USER:
        state["arn"] = _iam_arn("user", inputs)
        resource_id = str(inputs.get("name"))
    elif typ == types.AWS_OIDC_PROVIDER:
        host = str(inputs.get("url", "")).removeprefix("https://")
        state["arn"] = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/{host}"
        resource_id = state["arn"]
    elif typ == types.AWS_BUCKET:
        state["arn"] = f"arn:aws:s3:::{inputs.get('bucket')}"
        resource_id = str(inputs.get("bucket"))
    elif typ == types.AWS_ACCESS_KEY:
        resource_id = mock_access_key_id(name)
        state["secret"] = envelope("mock-secret-access-key")
        state["createDate"] = "2026-01-01T00:00:00Z"
    elif typ == types.GITHUB_ENVIRONMENT:
        resource_id = f"{inputs.get('repository')}:{inputs.get('environment')}"
    elif typ == types.MODAL_CI_TOKEN:
        # What only `pulumi up` can know: the token is minted and sealed then.
        resource_id = f"su-{name}"
        state["sealed_token_id"] = state["sealed_token_secret"] = SEALED_AT_UP
    return resource_id, state


@dataclass(frozen=True)
class MockGitHub:
    """What the mocked GitHub says of the repository and its owner (the defaults: a public
    repository of an organization on Enterprise, whose OIDC subject template is the project's)."""

    owner_type: str = "Organization"
    visibility: str = "public"
    plan: str | None = "enterprise"
    subject_template: tuple[str, ...] | None = names.GITHUB_SUBJECT_CLAIMS  # None: GitHub's default
    repository_found: bool = True


def _github_answer(token: str, given: Mapping[str, Any], github: MockGitHub) -> dict | None:
    if token == "github:index/getRestApi:getRestApi":
        kind, _, login = str(given.get("endpoint", "")).partition("/")
        if kind == "users":
            body = {"login": login, "id": int(stable_id("owner", login)), "type": github.owner_type}
        elif kind == "orgs" and github.owner_type == "Organization":
            body = {"login": login, "id": int(stable_id("owner", login))}
            if github.plan is not None:
                body["plan"] = {"name": github.plan}
        else:
            return {"code": 404, "body": '{"message": "Not Found"}', "headers": "{}"}
        return {"code": 200, "body": json.dumps(body), "headers": "{}", "status": "200 OK"}
    if token == "github:index/getRepository:getRepository":
        full_name = str(given.get("fullName", ""))
        if not github.repository_found:
            return {"fullName": full_name, "repoId": 0}
        return {
            "fullName": full_name,
            "name": full_name.split("/")[-1],
            "repoId": int(stable_id("repository", full_name)),
            "visibility": github.visibility,
            "private": github.visibility != "public",
        }
    if token == "github:index/getActionsPublicKey:getActionsPublicKey":
        return {**_public_key_answer("repository"), "repository": given.get("repository")}
    if token == "github:index/getActionsEnvironmentPublicKey:getActionsEnvironmentPublicKey":
        environment = str(given.get("environment", ""))
        return {**_public_key_answer(environment), "environment": environment}
    template_token = (
        "github:index/getActionsRepositoryOidcSubjectClaimCustomizationTemplate:"
        "getActionsRepositoryOidcSubjectClaimCustomizationTemplate"
    )
    if token == template_token:
        keys = github.subject_template
        return {
            "name": given.get("name"),
            "useDefault": keys is None,
            "includeClaimKeys": keys or [],
        }
    return None


class RecordingMocks:
    """Pulumi mocks that record every resource and answer lookups like the real providers."""

    def __init__(
        self,
        on_resource: Callable[[Any], tuple[str, dict] | None] | None = None,
        *,
        first_preview: bool = False,
        github: MockGitHub | None = None,
    ) -> None:
        # on_resource lets tests run a resource for real (e.g. a dynamic provider against the
        # fake Modal server) and return its (id, outputs) instead of the synthesized ones.
        # first_preview: answer as the engine does in a stack's first preview, where nothing
        # exists yet: a resource to be created reports its inputs and no computed output (no ARN,
        # no id), so whatever is built from those is unknown, as it is for a real user.
        self.resources: list[RenderedResource] = []
        # (token, arguments, explicit provider as (type, name) or None) of every lookup
        self.calls: list[tuple[str, dict, tuple[str, str] | None]] = []
        self._on_resource = on_resource
        self.first_preview = first_preview
        self.github = github or MockGitHub()

    # pulumi.runtime.Mocks interface (duck-typed: the SDK only calls these two methods)
    def new_resource(self, args: Any) -> tuple[str, dict]:
        masked, secret_paths = mask_secrets(dict(args.inputs))
        self.resources.append(
            RenderedResource(
                type=args.typ,
                name=args.name,
                inputs=masked,
                secret_paths=tuple(secret_paths),
                raw_inputs=unwrap(dict(args.inputs)),
                provider=_provider_of(args.provider),
            )
        )
        if self._on_resource is not None:
            result = self._on_resource(args)
            if result is not None:
                return result
        if self.first_preview:
            return "", dict(args.inputs)
        return _outputs_for(args.typ, args.name, args.inputs)

    def call(self, args: Any) -> dict:
        self.calls.append((args.token, dict(args.args), _provider_of(args.provider)))
        token, given = args.token, args.args
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": MOCK_ACCOUNT_ID,
                "arn": f"arn:aws:iam::{MOCK_ACCOUNT_ID}:user/offline-plan",
                "userId": "offline-plan",
                "id": MOCK_ACCOUNT_ID,
            }
        if token == "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider":
            arn = given.get("arn", "")
            return {"arn": arn, "url": arn.split("oidc-provider/")[-1], "clientIdLists": []}
        if token == "github:index/getUser:getUser":
            login = given.get("username", "")
            return {"id": stable_id("user", login), "login": login, "nodeId": f"U_{login}"}
        if token == "github:index/getTeam:getTeam":
            slug = given.get("slug", "")
            return {"id": stable_id("team", slug), "slug": slug, "nodeId": f"T_{slug}"}
        return _github_answer(token, given, self.github) or {}


@dataclass(frozen=True)
class Rendering:
    stack: str
    resources: tuple[RenderedResource, ...]
    outputs: Mapping[str, Any]

    def of_type(self, typ: str) -> list[RenderedResource]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> RenderedResource:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {typ} {name or ''}, found {len(found)}")
        return found[0]


def _report_once(error: BaseException) -> None:
    """Keep a failed render's error from being printed again at exit.

    When a resource fails, every output that depended on it holds the same exception; the runtime
    raises it once (to our caller) and the others are garbage-collected unread, which asyncio
    reports as "Future exception was never retrieved", with the whole traceback, at exit.
    """
    import asyncio

    from pulumi.runtime.sync_await import _ensure_event_loop

    loop = _ensure_event_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported = context.get("exception")
        if type(reported) is type(error) and str(reported) == str(error):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


@contextlib.contextmanager
def _pickler_restored() -> Iterator[None]:
    """Undo what declaring dynamic resources does to `pickle` once the program has run.

    pulumi 3.272.0's `serialize_provider` (pulumi/dynamic/dynamic.py) wraps
    `pickle._Pickler._batch_setitems` (and replaces `save_dict`) on every call and restores only
    `pickle.Pickler`, so each dynamic resource a process declares nests one more wrapper. A
    `pulumi up` declares a handful; a process that renders stacks again and again (the tests, the
    access graph) would reach Python's recursion limit.
    """
    import pickle

    saved = (pickle._Pickler._batch_setitems, pickle._Pickler.save_dict)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        pickle._Pickler._batch_setitems, pickle._Pickler.save_dict = saved  # type: ignore[attr-defined]


def render(cfg: Any, mocks: RecordingMocks | None = None) -> Rendering:
    """Run the program for one parsed `StackConfig` under mocks and return what it declared."""
    from infra.program import build

    return run_program(cfg.stack, lambda: build(cfg), mocks)


def run_program(
    stack: str, declare: Callable[[], Mapping[str, Any]], mocks: RecordingMocks | None = None
) -> Rendering:
    """Run `declare` (which declares resources and returns the stack's outputs) under mocks."""
    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.sync_await import _ensure_event_loop

    from infra.core.config_schema import PROJECT

    mocks = mocks or RecordingMocks()
    # The SDK registers the root stack on the thread's current event loop; a caller that ran (and
    # closed) a loop of its own before, as asyncio.run does, leaves none.
    _ensure_event_loop()
    # A fresh root Stack per render, so two stacks can render in one process.
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=mocks.first_preview)
    outputs: dict[str, Any] = {}

    def program() -> pulumi.Output:
        exported = declare()
        return pulumi.Output.all(**exported).apply(outputs.update)

    try:
        with _pickler_restored():
            pulumi.runtime.test(program)()
    except Exception as error:
        _report_once(error)
        raise
    # The URN the engine gives each resource (parents' types included), as the mock monitor
    # built it: what `pulumi up --target` matches (infra.core.planes).
    urns = {
        (urn.rsplit("::", 2)[-2].rsplit("$", 1)[-1], urn.rsplit("::", 1)[-1]): urn
        for urn in getattr(settings.get_monitor(), "resources", {})
    }
    resources = tuple(
        dataclasses.replace(r, urn=urns.get((r.type, r.name), "")) for r in mocks.resources
    )
    return Rendering(stack=stack, resources=resources, outputs=dict(outputs))
