"""A small in-process Pulumi engine for tests: the real program under mocks, with every dynamic
resource run by its own provider for real (here: against the fake Modal server).

Mocks alone never run a dynamic provider. This engine does for them what the Pulumi engine and its
dynamic provider host do, with the same semantics (each one is checked, with its source, by
tests/fakes/test_engine.py):

- the provider is unpickled from the `__provider` input, as the host does;
- inputs reach it with secret marks stripped (the host answers Configure with acceptSecrets=False),
  and outputs named like a secret input come back marked secret (engine `annotateSecrets`);
- `check` sees the old inputs and the new ones; `diff` and `update` see the recorded *outputs* as
  olds (provider_plugin.go Diff sends `Olds: mOldOutputs`);
- `up`: `create` for a new resource, `diff` + `update` for a changed one, replacement by
  create-then-delete (the old one deleted at the end of a successful run) unless the provider asks
  for delete-before-replace, and `delete` of what the program no longer declares;
- `preview`: `check` and `diff` only, never `create`, `update` or `delete` (the host does not
  support previews, so the engine returns a new resource's inputs as its state,
  provider_plugin.go Create); values not known yet reach `check` and `diff` as
  `pulumi.output.Unknown`, as the host deserializes them;
- `refresh`: `read` each recorded resource, then `diff` with the read outputs as olds and the
  recorded inputs as news (deploy/step.go RefreshStep: the diff an `up` would show, inverted).

Non-dynamic resources get the renderer's synthesized outputs. Selected non-dynamic types can run
for real: `InProcessEngine(handlers={type: handler})` hands each resource of such a type to a
`ResourceHandler` (e.g. `aws:iam/accessKey:AccessKey` against moto), which creates it, keeps it
while its inputs stay the same, updates it if it can, and deletes it once the program stops
declaring it. A provider failure fails the run; steps that finished before it stay recorded.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import dill

from infra.core.wire import envelope, is_secret_envelope, unwrap
from infra.tools.offline import RecordingMocks, Rendering, render, run_program

PROVIDER_KEY = "__provider"
Program = Callable[[], Mapping[str, Any]]


def load_provider(blob: str) -> Any:
    """Unpickle a provider the way Pulumi's dynamic provider host does (the blob is our own)."""
    return dill.loads(base64.b64decode(blob))  # noqa: S301


def annotate_secrets(outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs with every property named like a secret input marked secret, recursively through
    objects (pkg/resource/plugin/provider_plugin.go annotateSecrets)."""
    marked = dict(outputs)
    for key, given in inputs.items():
        if key not in marked:
            continue
        value = marked[key]
        if isinstance(value, dict) and isinstance(given, dict) and not is_secret_envelope(given):
            marked[key] = annotate_secrets(value, given)
        elif not is_secret_envelope(value) and _contains_secret(given):
            marked[key] = envelope(value)
    return marked


def _contains_secret(value: Any) -> bool:
    if is_secret_envelope(value):
        return True
    if isinstance(value, dict):
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


class ResourceHandler(Protocol):
    """Runs one non-dynamic resource type for real. Inputs arrive with secret marks stripped."""

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create the resource; return its id and outputs (what the program reads)."""
        ...

    def delete(self, id_: str, outputs: dict[str, Any]) -> None: ...


@dataclass
class Recorded:
    type: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    provider_blob: str  # empty for a resource run by a handler


@dataclass
class UpResult:
    rendering: Rendering
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class RefreshResult:
    """Per recorded dynamic resource: what `read` returned, and whether the diff saw drift."""

    reads: dict[str, Any] = field(default_factory=dict)
    drifted: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


class ProviderCheckFailed(Exception):
    pass


class HandlerCannotUpdate(Exception):
    """A handled resource's inputs changed and its handler has no `update`: a test setup error."""


class InProcessEngine:
    """Holds a stack's dynamic-resource state across runs, like a Pulumi backend would."""

    def __init__(self, handlers: Mapping[str, ResourceHandler] | None = None) -> None:
        self.state: dict[str, Recorded] = {}  # logical name -> what the last successful step left
        self.handlers: dict[str, ResourceHandler] = dict(handlers or {})

    def up(self, cfg: Any, *, program: Program | None = None) -> UpResult:
        """`pulumi up` of `cfg` (a StackConfig), or of `program` on the stack named `cfg`."""
        result = UpResult(rendering=None)  # type: ignore[arg-type]
        replaced: list[Recorded] = []

        def on_resource(args: Any) -> tuple[str, dict] | None:
            handler = self.handlers.get(args.typ)
            if handler is not None:
                return self._run_handled(handler, args, result)
            if PROVIDER_KEY not in args.inputs:
                return None
            return self._run_dynamic(args, result, replaced)

        result.rendering = self._run(cfg, program, RecordingMocks(on_resource=on_resource))
        for record in replaced:
            load_provider(record.provider_blob).delete(record.id, record.outputs)
        self._delete_undeclared(result)
        return result

    def preview(self, cfg: Any, *, program: Program | None = None) -> UpResult:
        """`pulumi preview`: what `up` would do, from `check` and `diff` alone. Nothing is
        created, updated or deleted, and the state is left as it is."""
        result = UpResult(rendering=None)  # type: ignore[arg-type]

        def on_resource(args: Any) -> tuple[str, dict] | None:
            if PROVIDER_KEY not in args.inputs:
                return None
            blob = unwrap(args.inputs[PROVIDER_KEY])
            provider = load_provider(blob)
            news = {k: unwrap(v) for k, v in args.inputs.items() if k != PROVIDER_KEY}
            old = self.state.get(args.name)
            inputs = self._checked(provider, args.name, old, news)
            if old is None:
                result.created.append(args.name)
                return "", {**inputs, PROVIDER_KEY: blob}  # the engine echoes the inputs
            diff = provider.diff(old.id, old.outputs, inputs)
            if diff.changes and diff.replaces:
                result.replaced.append(args.name)
            elif diff.changes:
                result.updated.append(args.name)
            else:
                result.unchanged.append(args.name)
            return old.id, {**old.outputs, PROVIDER_KEY: blob}

        mocks = RecordingMocks(on_resource=on_resource, first_preview=not self.state)
        result.rendering = self._run(cfg, program, mocks)
        declared = {r.name for r in result.rendering.resources}
        result.deleted = [name for name in self.state if name not in declared]
        return result

    def refresh(self) -> RefreshResult:
        """`pulumi refresh`: each provider's `read`, then the diff an `up` would show from the
        read state back to the recorded inputs."""
        result = RefreshResult()
        for name, record in self.state.items():
            if not record.provider_blob:
                continue
            provider = load_provider(record.provider_blob)
            read = provider.read(record.id, record.outputs)
            result.reads[name] = read
            if not read.id:
                result.gone.append(name)
                continue
            diff = provider.diff(read.id, dict(read.outs or {}), record.inputs)
            if diff.changes:
                result.drifted.append(name)
        return result

    # The steps.

    def _run(self, cfg: Any, program: Program | None, mocks: RecordingMocks) -> Rendering:
        if program is None:
            return render(cfg, mocks)
        return run_program(str(cfg), program, mocks)

    def _checked(self, provider: Any, name: str, old: Recorded | None, news: dict) -> dict:
        checked = provider.check(old.inputs if old else {}, news)
        if checked.failures:
            reasons = "; ".join(f"{f.property}: {f.reason}" for f in checked.failures)
            raise ProviderCheckFailed(f"{name}: {reasons}")
        return dict(checked.inputs) if checked.inputs is not None else news

    def _run_dynamic(
        self, args: Any, result: UpResult, replaced: list[Recorded]
    ) -> tuple[str, dict]:
        state = self.state
        blob = unwrap(args.inputs[PROVIDER_KEY])
        provider = load_provider(blob)
        news = {k: unwrap(v) for k, v in args.inputs.items() if k != PROVIDER_KEY}
        old = state.get(args.name)
        inputs = self._checked(provider, args.name, old, news)
        if old is None:
            created = provider.create(inputs)
            state[args.name] = Recorded(
                args.typ, created.id, inputs, dict(created.outs or {}), blob
            )
            result.created.append(args.name)
        else:
            diff = provider.diff(old.id, old.outputs, inputs)
            if diff.changes and diff.replaces:
                # A replacement, as the engine does it: the new resource is created first and the
                # old one deleted once the update has succeeded (or first, when the provider asks
                # for delete-before-replace).
                if diff.delete_before_replace:
                    provider.delete(old.id, old.outputs)
                else:
                    replaced.append(old)
                created = provider.create(inputs)
                state[args.name] = Recorded(
                    args.typ, created.id, inputs, dict(created.outs or {}), blob
                )
                result.replaced.append(args.name)
            elif diff.changes:
                updated = provider.update(old.id, old.outputs, inputs)
                state[args.name] = Recorded(
                    args.typ, old.id, inputs, dict(updated.outs or {}), blob
                )
                result.updated.append(args.name)
            else:
                result.unchanged.append(args.name)
        record = state[args.name]
        outputs = annotate_secrets(record.outputs, dict(args.inputs))
        return record.id, {**outputs, PROVIDER_KEY: blob}

    def _delete_undeclared(self, result: UpResult) -> None:
        # Reverse creation order, as the engine deletes dependents first (an IAM user's keys and
        # policies before the user). A record leaves the state only once its delete succeeded.
        declared = {r.name for r in result.rendering.resources}
        for name in reversed(list(self.state)):
            if name not in declared:
                record = self.state[name]
                handler = self.handlers.get(record.type) if not record.provider_blob else None
                if handler is not None:
                    handler.delete(record.id, record.outputs)
                else:
                    load_provider(record.provider_blob).delete(record.id, record.outputs)
                del self.state[name]
                result.deleted.append(name)

    def _run_handled(
        self, handler: ResourceHandler, args: Any, result: UpResult
    ) -> tuple[str, dict[str, Any]]:
        inputs = {k: unwrap(v) for k, v in args.inputs.items()}
        old = self.state.get(args.name)
        if old is None:
            id_, outputs = handler.create(args.name, inputs)
            self.state[args.name] = Recorded(args.typ, id_, inputs, dict(outputs), "")
            result.created.append(args.name)
        elif old.inputs == inputs:
            result.unchanged.append(args.name)
        else:
            update = getattr(handler, "update", None)
            if update is None:
                raise HandlerCannotUpdate(
                    f"{args.name}: inputs of {args.typ} changed and its handler cannot update"
                )
            outputs = update(old.id, old.outputs, inputs)
            self.state[args.name] = Recorded(args.typ, old.id, inputs, dict(outputs), "")
            result.updated.append(args.name)
        record = self.state[args.name]
        return record.id, dict(record.outputs)
