"""Each Modal hook resource's properties, declared once: what `check`, `diff` and the resource's
constructor all derive from.

A `Field` says how a property is checked and normalised, whether a change to it is an update, a
replacement or nothing Modal needs to hear about, and whether it is secret or an output only. A
resource module declares one `Schema`; its provider's `check` and `diff` and its resource's props
come from that schema, so a property cannot be validated in one place and forgotten in another.

Values Pulumi does not know yet (during a preview) are the engine's unknown marker: checks skip
them, and any property holding one counts as changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, DiffResult, ResourceProvider

from infra.core.wire import contains_unknown
from infra.modal_hook.client import DEFAULT_POLICY, CallPolicy
from infra.modal_hook.host import with_headline
from infra.modal_hook.validation import Problems

# How a change to a property reaches Modal: a new object, an update in place, or not at all (the
# hook's own settings, such as allow_deletion).
Change = Literal["replace", "update", "none"]
Check = Callable[[str, Any, Mapping[str, Any]], Problems]


@dataclass(frozen=True)
class Field:
    name: str
    check: Check | None = None  # (property, value, all new inputs) -> problems
    default: Any = None  # used when the input is absent
    normalise: Callable[[Any], Any] | None = None  # applied to known values by `check`
    change: Change = "update"
    secret: bool = False  # marked secret whatever the caller passed, in inputs and outputs
    output: bool = False  # set by the provider; not an input


@dataclass(frozen=True)
class Schema:
    fields: tuple[Field, ...]

    @property
    def inputs(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.output)

    def names(self, *, inputs_only: bool = False) -> tuple[str, ...]:
        return tuple(f.name for f in (self.inputs if inputs_only else self.fields))

    def props(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The resource's props: every input from `values`, secret ones wrapped, outputs None."""
        props: dict[str, Any] = {}
        for f in self.fields:
            if f.output:
                props[f.name] = None
            elif f.secret and values[f.name] is not None:
                props[f.name] = pulumi.Output.secret(values[f.name])
            else:
                props[f.name] = values[f.name]
        return props

    def options(self, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
        """`opts` plus the secret outputs: the engine re-marks outputs named like secret inputs,
        and this states it for every secret property whatever the caller marked."""
        secret = [f.name for f in self.fields if f.secret]
        return pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=secret)
        )

    def check(self, news: Mapping[str, Any]) -> CheckResult:
        """Defaults applied, known values normalised, every problem named by its property."""
        inputs: dict[str, Any] = {}
        problems: Problems = []
        for f in self.inputs:
            value = news.get(f.name, f.default)
            if value is None:
                value = f.default
            if f.check is not None:
                problems += f.check(f.name, value, news)
            if f.normalise is not None and not contains_unknown(value) and value is not None:
                try:
                    value = f.normalise(value)
                except (TypeError, ValueError, AttributeError):
                    pass  # the check above has reported it
            inputs[f.name] = value
        return CheckResult(inputs, [CheckFailure(prop, reason) for prop, reason in problems])

    def diff(
        self, olds: Mapping[str, Any], news: Mapping[str, Any], *, also_changed: bool = False
    ) -> DiffResult:
        """Replace when an identity property changed, update when another managed one did."""
        replaces = [
            f.name
            for f in self.inputs
            if f.change == "replace" and differs(olds.get(f.name), news.get(f.name))
        ]
        changed = [
            f.name
            for f in self.inputs
            if f.change != "replace" and differs(olds.get(f.name), news.get(f.name))
        ]
        return DiffResult(
            changes=bool(replaces or changed or also_changed),
            replaces=replaces,
            stables=[],
            delete_before_replace=False,
        )

    def changed(self, olds: Mapping[str, Any], news: Mapping[str, Any], change: Change) -> bool:
        """Whether any property of kind `change` differs between `olds` and `news`."""
        return any(
            differs(olds.get(f.name), news.get(f.name)) for f in self.inputs if f.change == change
        )


_PROVIDER_METHODS = ("check", "diff", "create", "read", "update", "delete")


class SchemaProvider(ResourceProvider):
    """A dynamic provider whose `check` and `diff` come from its resource's schema. It holds only
    its (non-secret) call policy: Pulumi pickles the provider into state.

    Every provider method a subclass defines is wrapped by `host.with_headline`, so under Pulumi's
    provider host a failure reads `rentagpu: MESSAGE` first and the hook's log lines are shown.
    """

    schema: Schema

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _PROVIDER_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, with_headline(cls.__dict__[name]))

    def __init__(self, policy: CallPolicy = DEFAULT_POLICY) -> None:
        super().__init__()
        self.policy = policy

    @with_headline
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return self.schema.check(news)

    @with_headline
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return self.schema.diff(olds, news)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def differs(old: Any, new: Any) -> bool:
    """Whether a property must be treated as changed: it is (partly) unknown, or not equal."""
    return contains_unknown(new) or _canonical(old) != _canonical(new)


def identity_from(id_: str, props: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, str]:
    """The two parts of an `A/B` id (environment and object name) from stored outputs, or from the
    id itself when there are none (a `pulumi import`)."""
    first, _, second = id_.partition("/")
    return props.get(keys[0]) or first, props.get(keys[1]) or second
