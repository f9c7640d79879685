"""From the engine's steps to the changes a report lists: which resources, which properties.

In a refresh, before is what the last deployment recorded (expected) and after is what the
provider reads now (actual); in a preview, before is the recorded state and after the new inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.core.secrets import SECRET_MASK
from infra.tools.report.document import parse_urn
from infra.tools.report.values import (
    ABSENT,
    can_hold_a_secret,
    contains_secret,
    diff_values,
    join_path,
    lookup,
    named_secret,
    render_value,
    split_path,
)

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"

# Ops that mean "nothing to do": unchanged resources in a preview, and in a refresh (the engine
# rewrites a refresh step to `update` when it drifted and to `delete` when the resource is gone).
_UNCHANGED_OPS = frozenset({"same", "refresh", "read"})
# Replacement halves that only appear with --show-replacement-steps; the `replace` step says it all.
_REPLACEMENT_HALVES = frozenset({"create-replacement", "delete-replaced", "discard-replaced"})
# changeSummary keys that count unchanged resources.
_UNCHANGED_SUMMARY = frozenset({"same", "refresh", "read"})


@dataclass(frozen=True)
class PropertyChange:
    path: str
    before: str  # rendered for markdown, secrets masked
    after: str
    secret: bool


@dataclass(frozen=True)
class ResourceChange:
    urn: str
    type: str
    name: str
    op: str
    properties: tuple[PropertyChange, ...]


@dataclass(frozen=True)
class Report:
    kind: str  # "preview" or "refresh"
    stack: str
    changes: tuple[ResourceChange, ...]
    change_summary: Mapping[str, int]
    undetailed: int  # changes the engine counted but did not list as steps

    @property
    def has_changes(self) -> bool:
        return bool(self.changes) or self.undetailed > 0


def _state(step: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    state = step.get(key)
    return state if isinstance(state, dict) else {}


def _secret_paths(step: Mapping[str, Any], type_token: str) -> set[str]:
    """Top-level properties to treat as secret whatever their value looks like."""
    names: set[str] = set()
    for key in ("oldState", "newState"):
        names.update(_state(step, key).get("additionalSecretOutputs") or [])
    if type_token.rsplit(":", 1)[-1].endswith("Secret"):
        names.add("value")  # github ActionsSecret / ActionsEnvironmentSecret, and the like
    return names


def _sides(step: Mapping[str, Any], kind: str, input_diff: bool) -> tuple[Any, Any]:
    """The two property maps a diff compares."""
    old, new = _state(step, "oldState"), _state(step, "newState")
    if kind == "refresh":
        # Refresh reads the resource: compare what was recorded with what is there now.
        side = "inputs" if input_diff else "outputs"
        return old.get(side) or old.get("inputs") or {}, new.get(side) or new.get("inputs") or {}
    # A preview compares recorded state (outputs, or inputs for an input diff) with new inputs.
    before = old.get("inputs") if input_diff else (old.get("outputs") or old.get("inputs"))
    return before or {}, new.get("inputs") or {}


def _property_rows(
    step: Mapping[str, Any], kind: str, type_token: str, hide_values: bool
) -> tuple[PropertyChange, ...]:
    op = step["op"]
    if op in {"create", "delete", "import"} or (kind == "refresh" and not step.get("newState")):
        return ()  # the whole resource comes or goes; its property values are not the story
    secret_top = _secret_paths(step, type_token)
    raw: list[tuple[str, list[str | int], Any, Any]] = []
    detailed = step.get("detailedDiff") or {}
    if detailed:
        for key, entry in sorted(detailed.items()):
            input_diff = isinstance(entry, dict) and bool(entry.get("inputDiff"))
            before_map, after_map = _sides(step, kind, input_diff)
            segments = split_path(key)
            before, after = lookup(before_map, segments), lookup(after_map, segments)
            # Expand to leaves (a policy document held as a string diffs statement by statement);
            # a secret that changed is `[secret]` on both sides and has no leaves: keep the key.
            leaves = list(diff_values(before, after, segments)) or [
                (join_path(segments), before, after)
            ]
            for path, old, new in leaves:
                raw.append((path, split_path(path.split(" → ", 1)[0]), old, new))
    else:
        before_map, after_map = _sides(step, kind, input_diff=(kind == "preview"))
        reasons = set(step.get("diffReasons") or []) | set(step.get("replaceReasons") or [])
        for path, before, after in diff_values(before_map, after_map, []):
            top = split_path(path.split(" → ", 1)[0])[0]
            if kind == "preview" and reasons and top not in reasons:
                continue
            raw.append((path, split_path(path.split(" → ", 1)[0]), before, after))
    rows = []
    for path, segments, before, after in raw:
        by_name = any(named_secret(s) for s in segments) or (
            bool(segments) and segments[0] in secret_top
        )
        secret = (
            (by_name and (can_hold_a_secret(before) or can_hold_a_secret(after)))
            or contains_secret(before)
            or contains_secret(after)
        )
        if secret:
            cells = tuple(
                render_value(ABSENT) if side is ABSENT else f"<code>{SECRET_MASK}</code>"
                for side in (before, after)
            )
        else:
            cells = (render_value(before, hide_values), render_value(after, hide_values))
        rows.append(PropertyChange(path=path, before=cells[0], after=cells[1], secret=secret))
    return tuple(rows)


def detect_kind(document: Mapping[str, Any]) -> str:
    ops = {step["op"] for step in document.get("steps") or []}
    return "refresh" if "refresh" in ops else "preview"


def build_report(
    document: Mapping[str, Any],
    kind: str = "auto",
    stack: str | None = None,
    hide_values: bool = False,
) -> Report:
    if kind == "auto":
        kind = detect_kind(document)
    changes: dict[str, ResourceChange] = {}
    stacks_seen: list[str] = []
    for step in document.get("steps") or []:
        urn_stack, type_token, name = parse_urn(step["urn"])
        stacks_seen.append(urn_stack)
        op = step["op"]
        if op in _UNCHANGED_OPS or op in _REPLACEMENT_HALVES or type_token == ROOT_STACK_TYPE:
            continue
        properties = _property_rows(step, kind, type_token, hide_values)
        changes.setdefault(
            step["urn"],
            ResourceChange(
                urn=step["urn"], type=type_token, name=name, op=op, properties=properties
            ),
        )
    summary = dict(document.get("changeSummary") or {})
    counted = sum(
        n
        for op, n in summary.items()
        if op not in _UNCHANGED_SUMMARY and op not in _REPLACEMENT_HALVES
    )
    return Report(
        kind=kind,
        stack=stack or (stacks_seen[0] if stacks_seen else "?"),
        changes=tuple(sorted(changes.values(), key=lambda c: (c.type, c.name, c.urn))),
        change_summary=summary,
        undetailed=max(0, counted - len(changes)),
    )
