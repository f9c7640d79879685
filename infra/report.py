"""`python -m infra report [FILE]`: the engine's JSON as a markdown change or drift report.

Reads what `pulumi preview --json` or `pulumi refresh --preview-only --json` prints (one
PreviewDigest document: `config`, `steps`, `diagnostics`, `changeSummary`) from FILE or stdin and
prints, for each changed resource, its type and name (from the URN) and each changed property with
its value before and after. In a refresh, before is what the last deployment recorded (expected)
and after is what the provider reads now (actual).

Secrets never reach the report: a value the engine marks secret (`"[secret]"`, or the secret
signature object), a property listed in the resource's `additionalSecretOutputs`, a property whose
name says secret/password/token/private key, and the `value` of a `...Secret` resource are all
shown as `[secret]` on both sides, so even a secret that is no longer marked in the refreshed
state stays hidden. Values not marked and not named like secrets are shown: use `--hide-values`
where the report lands somewhere public.

Exit codes: 0 no changes; 7 changes or drift (Pulumi's own code for `--expect-no-changes`); 2 the
input is not an engine document (malformed JSON, a plan, an event stream).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.errors import ReportError
from infra.render import SECRET_SIG, SECRET_SIG_KEY

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 7

SECRET_MASK = "[secret]"
# The engine's placeholder for a value only known after `up` (pulumi/runtime/rpc.py UNKNOWN).
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"

# Ops that mean "nothing to do": unchanged resources in a preview, and in a refresh (the engine
# rewrites a refresh step to `update` when it drifted and to `delete` when the resource is gone).
_UNCHANGED_OPS = frozenset({"same", "refresh", "read"})
# Replacement halves that only appear with --show-replacement-steps; the `replace` step says it all.
_REPLACEMENT_HALVES = frozenset({"create-replacement", "delete-replaced", "discard-replaced"})
# changeSummary keys that count unchanged resources.
_UNCHANGED_SUMMARY = frozenset({"same", "refresh", "read"})

_SECRET_NAME = re.compile(
    r"secret|password|passwd|passphrase|token|private_?key|credential|plaintext|ciphertext"
    r"|encrypted|api_?key|access_?key",
    re.IGNORECASE,
)
# Names that say "secret" but hold an identifier: secretName, tokenId, accessKeyId, secretArn.
_NAME_OF_A_SECRET = re.compile(r"(name|names|id|ids|arn|arns|count|version)$", re.IGNORECASE)

MAX_CELL = 160
MAX_ROWS_PER_RESOURCE = 40
DEFAULT_MAX_CHARS = 60_000  # a GitHub issue body holds 65,536 characters


class _Absent:
    """A property that one side does not have (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


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


# --- reading the engine's document -----------------------------------------------------------


def load_document(text: str) -> dict[str, Any]:
    """Parse and check one PreviewDigest; anything else is a ReportError that says what it is."""
    stripped = text.strip()
    if not stripped:
        raise ReportError(
            "empty input: pulumi printed no JSON (it failed before the preview; see its stderr)"
        )
    decoder = json.JSONDecoder()
    try:
        document, end = decoder.raw_decode(stripped)
    except json.JSONDecodeError as error:
        raise ReportError(
            f"not JSON: {error.msg} at line {error.lineno} column {error.colno}; give the output "
            "of `pulumi preview --json` or `pulumi refresh --preview-only --json`"
        ) from None
    if stripped[end:].strip():
        if isinstance(document, dict) and "sequence" in document:
            raise ReportError(
                "this is a stream of engine events (one JSON object per line, as `pulumi up "
                "--json` prints); give the single document `pulumi preview --json` prints"
            )
        raise ReportError(
            f"extra data after the JSON document (character {end + 1}): give one command's "
            "`--json` output, nothing else"
        )
    if not isinstance(document, dict):
        raise ReportError(
            f"not an engine document: expected a JSON object, got {type(document).__name__}"
        )
    if "resources" in document and "violations" in document:
        raise ReportError(
            "this is `python -m infra plan --json` output, not the engine's: give "
            "`pulumi preview --json` or `pulumi refresh --preview-only --json` output"
        )
    if "steps" not in document and "changeSummary" not in document:
        raise ReportError(
            "not an engine document: it has neither `steps` nor `changeSummary` (pulumi prints "
            "`{}` or nothing when it fails; see its stderr)"
        )
    steps = document.get("steps") or []
    if not isinstance(steps, list):
        raise ReportError("not an engine document: `steps` is not a list")
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("op"), str):
            raise ReportError(f"not an engine document: step {index} has no `op`")
        if not isinstance(step.get("urn"), str) or not step["urn"].startswith("urn:pulumi:"):
            raise ReportError(f"not an engine document: step {index} has no `urn:pulumi:` URN")
        for key in ("oldState", "newState", "detailedDiff"):
            if step.get(key) is not None and not isinstance(step[key], dict):
                raise ReportError(f"not an engine document: step {index} `{key}` is not an object")
    summary = document.get("changeSummary") or {}
    if not isinstance(summary, dict) or not all(isinstance(v, int) for v in summary.values()):
        raise ReportError("not an engine document: `changeSummary` is not a map of counts")
    return document


def parse_urn(urn: str) -> tuple[str, str, str]:
    """`urn:pulumi:STACK::PROJECT::PARENT$TYPE::NAME` -> (stack, type, name)."""
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        raise ReportError(f"not an engine URN: {urn!r}")
    stack = parts[0].removeprefix("urn:pulumi:")
    return stack, parts[2].rsplit("$", 1)[-1], parts[3]


# --- property paths and values ---------------------------------------------------------------

_PATH_TOKEN = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[\]]+)')


def split_path(path: str) -> list[str | int]:
    """Split a detailedDiff key (`tags.owner`, `rules[0].cidr`, `tags["a.b"]`) into segments."""
    segments: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            return [path]  # not a path we understand: treat it as one top-level key
        index, quoted, plain = match.groups()
        if index is not None:
            segments.append(int(index))
        elif quoted is not None:
            segments.append(json.loads(f'"{quoted}"'))
        else:
            segments.append(plain)
        position = match.end()
    return segments


def join_path(segments: list[str | int]) -> str:
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-/]*", segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment)}]"
    return text


def lookup(value: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        if isinstance(value, dict) and isinstance(segment, str) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and isinstance(segment, int) and segment < len(value):
            value = value[segment]
        else:
            return ABSENT
    return value


def is_marked_secret(value: Any) -> bool:
    if value == SECRET_MASK:
        return True
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def _named_secret(segment: str | int) -> bool:
    return (
        isinstance(segment, str)
        and bool(_SECRET_NAME.search(segment))
        and not _NAME_OF_A_SECRET.search(segment)
    )


def _can_hold_a_secret(value: Any) -> bool:
    # A flag or an empty value under a secret-sounding name (`encrypted: true`) is safe to show.
    return not (value is None or value is ABSENT or isinstance(value, bool))


def mask(value: Any) -> Any:
    """A copy with every marked or secret-named value replaced by SECRET_MASK."""
    if is_marked_secret(value):
        return SECRET_MASK
    if isinstance(value, dict):
        return {
            k: SECRET_MASK if _named_secret(k) and _can_hold_a_secret(v) else mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def contains_secret(value: Any) -> bool:
    if is_marked_secret(value):
        return True
    if isinstance(value, dict):
        return any(
            (_named_secret(k) and _can_hold_a_secret(v)) or contains_secret(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def render_value(value: Any, hide_values: bool = False) -> str:
    """One table cell: compact JSON, masked, truncated, safe inside a markdown table."""
    if value is ABSENT:
        return "*(absent)*"
    if value == _UNKNOWN:
        return "*(known after deploy)*"
    if hide_values and value != SECRET_MASK:
        return "*(hidden)*"
    text = json.dumps(mask(value), sort_keys=True, ensure_ascii=False)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    # <code> rather than backticks: a value may hold backticks; `|` would split the table cell.
    return "<code>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"


def _as_json_document(value: Any) -> Any:
    """Policy documents and similar are JSON held in strings; diff them as structure."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def diff_values(before: Any, after: Any, path: list[str | int]) -> Iterator[tuple[str, Any, Any]]:
    """Leaf-level differences between two values, as (path, before, after)."""
    if before == after:
        return
    if is_marked_secret(before) or is_marked_secret(after):
        yield join_path(path), before, after  # never look inside a secret
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if isinstance(key, str) and key.startswith("__"):
                continue  # engine internals (`__provider`, `__meta`), not the user's properties
            yield from diff_values(before.get(key, ABSENT), after.get(key, ABSENT), [*path, key])
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from diff_values(old, new, [*path, index])
        return
    old_doc, new_doc = _as_json_document(before), _as_json_document(after)
    if old_doc is not None and new_doc is not None:
        prefix = join_path(path) + " → "
        for inner, old, new in diff_values(old_doc, new_doc, []):
            yield prefix + inner, old, new
        return
    yield join_path(path), before, after


# --- steps to resource changes ---------------------------------------------------------------


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
        by_name = any(_named_secret(s) for s in segments) or (
            bool(segments) and segments[0] in secret_top
        )
        secret = (
            (by_name and (_can_hold_a_secret(before) or _can_hold_a_secret(after)))
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


# --- markdown --------------------------------------------------------------------------------

_VERDICTS = {
    "refresh": {
        "update": "changed outside Pulumi",
        "delete": "deleted outside Pulumi: the resource no longer exists",
    },
    "preview": {
        "create": "will be created",
        "update": "will be updated in place",
        "delete": "will be deleted",
        "replace": "will be replaced",
        "import": "will be imported",
        "import-replacement": "will be replaced by an import",
        "read-replacement": "will be re-read",
        "discard": "will be forgotten (read resource)",
        "remove-pending-replace": "pending replacement will be removed",
    },
}


def _verdict(kind: str, op: str) -> str:
    return _VERDICTS[kind].get(op, op)


def _title(report: Report) -> str:
    count = len(report.changes) + report.undetailed
    noun = "resource" if count == 1 else "resources"
    if report.kind == "refresh":
        if not report.has_changes:
            return f"### No drift in stack `{report.stack}`"
        return (
            f"### Drift in stack `{report.stack}`: {count} {noun} differ from the last deployment"
        )
    if not report.has_changes:
        return f"### No changes in stack `{report.stack}`"
    return f"### Preview of stack `{report.stack}`: {count} {noun} to change"


def _resource_section(change: ResourceChange, kind: str) -> str:
    lines = [
        f"#### `{change.type}` **{html.escape(change.name, quote=False)}**: "
        f"{_verdict(kind, change.op)}",
        f"<sub><code>{html.escape(change.urn, quote=False)}</code></sub>",
        "",
    ]
    if change.properties:
        before, after = ("expected", "actual") if kind == "refresh" else ("before", "after")
        lines += [f"| property | {before} | {after} |", "| --- | --- | --- |"]
        for row in change.properties[:MAX_ROWS_PER_RESOURCE]:
            path = html.escape(row.path, quote=False).replace("|", "&#124;")
            lines.append(f"| <code>{path}</code> | {row.before} | {row.after} |")
        hidden = len(change.properties) - MAX_ROWS_PER_RESOURCE
        if hidden > 0:
            lines.append(f"| … {hidden} more properties | | |")
    elif change.op == "delete" and kind == "refresh":
        lines.append("`pulumi up` would create it again; `pulumi refresh` would forget it.")
    elif change.op == "update":
        lines.append("The engine reported a change but no property detail; see the run log.")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_markdown(report: Report, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    head = [_title(report), ""]
    if report.kind == "refresh" and report.has_changes:
        head.append(
            "*Expected* is what Pulumi recorded at the last deployment; *actual* is what the "
            "provider reads now. `pulumi up` would set expected again; `pulumi refresh` would "
            "accept actual. Secret values show as `[secret]`."
        )
    elif report.kind == "refresh":
        head.append("Every resource reads back as Pulumi last deployed it.")
    elif report.has_changes:
        head.append("Secret values show as `[secret]`.")
    else:
        head.append("The stack's resources match the program.")
    head.append("")
    tail = []
    if report.undetailed:
        tail.append(
            f"The engine counted {report.undetailed} more change(s) that its JSON does not "
            "detail; see the run log."
        )
    if report.change_summary:
        counts = ", ".join(f"{op} {n}" for op, n in sorted(report.change_summary.items()))
        tail.append(f"<sub>Engine summary: {counts}.</sub>")
    text = "\n".join(head) + "\n"
    footer = "\n".join(tail) + ("\n" if tail else "")
    for index, change in enumerate(report.changes):
        section = _resource_section(change, report.kind)
        left = len(report.changes) - index
        if len(text) + len(section) + len(footer) + 200 > max_chars:
            text += (
                f"*… {left} more resource(s) not shown: the report was cut to fit; the run "
                "log has them all.*\n\n"
            )
            break
        text += section + "\n"
    return text + footer


# --- command ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise ReportError(f"cannot read {args.file}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ReportError(f"{args.file} is not UTF-8 text") from None
    report = build_report(load_document(text), args.kind, args.stack, args.hide_values)
    sys.stdout.write(render_markdown(report, args.max_chars))
    return EXIT_CHANGES if report.has_changes else EXIT_NO_CHANGES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="turn `pulumi preview/refresh --json` output into a markdown report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", nargs="?", default="-", help="engine JSON (default: stdin)")
    parser.add_argument(
        "--kind",
        choices=("auto", "preview", "refresh"),
        default="auto",
        help="what produced the JSON (auto: refresh if any step is a refresh step)",
    )
    parser.add_argument("--stack", help="stack name for the title (default: from the URNs)")
    parser.add_argument(
        "--hide-values",
        action="store_true",
        help="name changed properties but show no values (for reports that land in public)",
    )
    parser.add_argument(
        "--max-chars",
        type=int,
        default=DEFAULT_MAX_CHARS,
        help=f"cut the report to this size (default {DEFAULT_MAX_CHARS}, fits a GitHub issue)",
    )
    parser.set_defaults(func=run)
