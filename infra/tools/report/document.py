"""Reading the engine's JSON: one PreviewDigest (`pulumi preview --json`, `pulumi refresh
--preview-only --json`), checked, or a `ReportError` that says what was given instead."""

from __future__ import annotations

import json
from typing import Any

from infra.core.errors import ReportError


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
