"""A small in-process `pulumi up` for tests: the real program under mocks, with every dynamic
resource run by its own provider for real (here: against the fake Modal server).

Mocks alone never run a dynamic provider. This engine does what the Pulumi engine would do for
them, in the same order: unpickle the provider from the `__provider` input exactly as the dynamic
provider host does, strip secret marks (dynamic providers run with acceptSecrets=False), `check`,
then `create` for a new resource or `diff` + `update` against the state recorded by the previous
`up`, and `delete` what the program no longer declares. Non-dynamic resources get the renderer's
synthesized outputs. A provider failure fails the `up`; steps that finished before it stay recorded.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import dill

from infra.render import RecordingMocks, Rendering, is_secret, render

PROVIDER_KEY = "__provider"


def load_provider(blob: str) -> Any:
    """Unpickle a provider the way Pulumi's dynamic provider host does (the blob is our own)."""
    return dill.loads(base64.b64decode(blob))  # noqa: S301


def _plain(value: Any) -> Any:
    if is_secret(value):
        return _plain(value.get("value"))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class Recorded:
    type: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    provider_blob: str


@dataclass
class UpResult:
    rendering: Rendering
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


class ProviderCheckFailed(Exception):
    pass


class InProcessEngine:
    """Holds a stack's dynamic-resource state across `up` calls, like a Pulumi backend would."""

    def __init__(self) -> None:
        self.state: dict[str, Recorded] = {}  # logical name -> what the last successful step left

    def up(self, cfg: Any) -> UpResult:
        # Like the real engine, each finished step is recorded even if a later one fails; deletes
        # of resources the program dropped happen only after every declared resource succeeded.
        state = self.state
        result = UpResult(rendering=None)  # type: ignore[arg-type]

        def on_resource(args: Any) -> tuple[str, dict] | None:
            if PROVIDER_KEY not in args.inputs:
                return None
            blob = _plain(args.inputs[PROVIDER_KEY])
            provider = load_provider(blob)
            news = {k: _plain(v) for k, v in args.inputs.items() if k != PROVIDER_KEY}
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
                if diff.changes:
                    updated = provider.update(old.id, old.outputs, inputs)
                    state[args.name] = Recorded(
                        args.typ, old.id, inputs, dict(updated.outs or {}), blob
                    )
                    result.updated.append(args.name)
                else:
                    result.unchanged.append(args.name)
            record = state[args.name]
            return record.id, {**record.outputs, PROVIDER_KEY: blob}

        result.rendering = render(cfg, RecordingMocks(on_resource=on_resource))
        declared = {r.name for r in result.rendering.resources}
        for name in reversed(list(state)):
            if name not in declared:
                record = state.pop(name)
                provider = load_provider(record.provider_blob)
                provider.delete(record.id, record.outputs)
                result.deleted.append(name)
        return result

    def refresh(self) -> dict[str, Any]:
        """`pulumi refresh`: each provider's `read` for each recorded resource."""
        reads = {}
        for name, record in self.state.items():
            provider = load_provider(record.provider_blob)
            reads[name] = provider.read(record.id, record.outputs)
        return reads
