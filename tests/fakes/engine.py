"""A small in-process `pulumi up` for tests: the real program under mocks, with every dynamic
resource run by its own provider for real (here: against the fake Modal server).

Mocks alone never run a dynamic provider. This engine does what the Pulumi engine would do for
them, in the same order: unpickle the provider from the `__provider` input exactly as the dynamic
provider host does, strip secret marks (dynamic providers run with acceptSecrets=False), `check`,
then `create` for a new resource or `diff` + `update` against the state recorded by the previous
`up`, and `delete` what the program no longer declares. Non-dynamic resources get the renderer's
synthesized outputs. A provider failure fails the `up`; steps that finished before it stay recorded.

Selected non-dynamic types can run for real too: `InProcessEngine(handlers={type: handler})` hands
each resource of such a type to a `ResourceHandler` (e.g. `aws:iam/accessKey:AccessKey` against
moto), which creates it, keeps it while its inputs stay the same, updates it if it can, and deletes
it once the program stops declaring it. That is what makes create-before-delete visible: a new
logical resource is created during the `up`, the one it supersedes is deleted only at the end of a
successful `up`, and a failed `up` deletes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import dill

from infra.core.wire import unwrap
from infra.tools.offline import RecordingMocks, Rendering, render

PROVIDER_KEY = "__provider"


def load_provider(blob: str) -> Any:
    """Unpickle a provider the way Pulumi's dynamic provider host does (the blob is our own)."""
    return dill.loads(base64.b64decode(blob))  # noqa: S301


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


class ProviderCheckFailed(Exception):
    pass


class HandlerCannotUpdate(Exception):
    """A handled resource's inputs changed and its handler has no `update`: a test setup error."""


class InProcessEngine:
    """Holds a stack's dynamic-resource state across `up` calls, like a Pulumi backend would."""

    def __init__(self, handlers: Mapping[str, ResourceHandler] | None = None) -> None:
        self.state: dict[str, Recorded] = {}  # logical name -> what the last successful step left
        self.handlers: dict[str, ResourceHandler] = dict(handlers or {})

    def up(self, cfg: Any) -> UpResult:
        # Like the real engine, each finished step is recorded even if a later one fails; deletes
        # of resources the program dropped happen only after every declared resource succeeded.
        state = self.state
        result = UpResult(rendering=None)  # type: ignore[arg-type]

        def on_resource(args: Any) -> tuple[str, dict] | None:
            handler = self.handlers.get(args.typ)
            if handler is not None:
                return self._run_handled(handler, args, result)
            if PROVIDER_KEY not in args.inputs:
                return None
            blob = unwrap(args.inputs[PROVIDER_KEY])
            provider = load_provider(blob)
            news = {k: unwrap(v) for k, v in args.inputs.items() if k != PROVIDER_KEY}
            old = state.get(args.name)
            checked = provider.check(old.inputs if old else {}, news)
            if checked.failures:
                reasons = "; ".join(f"{f.property}: {f.reason}" for f in checked.failures)
                raise ProviderCheckFailed(f"{args.name}: {reasons}")
            inputs = dict(checked.inputs) if checked.inputs is not None else news
            if old is None:
                created = provider.create(inputs)
                state[args.name] = Recorded(
                    args.typ, created.id, inputs, dict(created.outs or {}), blob
                )
                result.created.append(args.name)
            else:
                diff = provider.diff(old.id, old.outputs, inputs)
                if diff.changes and diff.replaces:
                    # A replacement, as the engine does it: the new resource is created first
                    # and the old one deleted once the update has succeeded (or first, when the
                    # provider asks for delete-before-replace).
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
            return record.id, {**record.outputs, PROVIDER_KEY: blob}

        replaced: list[Recorded] = []
        result.rendering = render(cfg, RecordingMocks(on_resource=on_resource))
        for record in replaced:
            load_provider(record.provider_blob).delete(record.id, record.outputs)
        declared = {r.name for r in result.rendering.resources}
        # Reverse creation order, as the engine deletes dependents first (an IAM user's keys and
        # policies before the user). A record leaves the state only once its delete succeeded.
        for name in reversed(list(state)):
            if name not in declared:
                record = state[name]
                handler = self.handlers.get(record.type) if not record.provider_blob else None
                if handler is not None:
                    handler.delete(record.id, record.outputs)
                else:
                    load_provider(record.provider_blob).delete(record.id, record.outputs)
                del state[name]
                result.deleted.append(name)
        return result

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

    def refresh(self) -> dict[str, Any]:
        """`pulumi refresh`: each provider's `read` for each recorded resource."""
        reads = {}
        for name, record in self.state.items():
            provider = load_provider(record.provider_blob)
            reads[name] = provider.read(record.id, record.outputs)
        return reads
