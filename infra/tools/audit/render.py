"""An audit report as markdown fit for a GitHub issue, or as one JSON object."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping
from typing import Any

from infra.core.errors import AuditError
from infra.tools.audit.findings import (
    SYSTEMS,
    Activity,
    AuditReport,
    Finding,
    NotChecked,
    Severity,
    SourceResult,
    day,
)
from infra.tools.report.markdown import DEFAULT_MAX_CHARS

_SYSTEM_NAMES = {"modal": "Modal", "github": "GitHub", "aws": "AWS"}


def _cell(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "&#124;").replace("\n", " ")


def _code(text: str) -> str:
    return f"<code>{_cell(text)}</code>"


def _title(report: AuditReport) -> str:
    stack = report.stack
    count = len(report.findings)
    if not report.complete:
        return f"### Audit of stack `{stack}` is incomplete: {count} findings so far"
    if not count:
        return f"### No audit findings in stack `{stack}`"
    counts = ", ".join(f"{n} {label}" for label, n in report.counts().items() if n)
    noun = "finding" if count == 1 else "findings"
    return f"### Audit of stack `{stack}`: {count} {noun} ({counts})"


def _scope_line(report: AuditReport) -> str:
    scope = report.scope
    checked = [_SYSTEM_NAMES[s] for s in ("modal", "github", "aws") if s not in scope.skipped]
    line = (
        f"Events and deployments of the last {scope.since_days} days "
        f"({day(scope.window_start)} to {day(scope.now)} UTC); credentials unused for "
        f"{scope.unused_days} days; rotation period {scope.rotation_days} days. "
        f"Checked: {', '.join(checked) or 'nothing'}."
    )
    if scope.skipped:
        line += " Skipped on request: " + ", ".join(_SYSTEM_NAMES[s] for s in scope.skipped) + "."
    return line


def render_markdown(report: AuditReport, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    lines = [_title(report), "", _scope_line(report), ""]
    if report.not_checked:
        lines += ["#### Not checked", ""]
        lines += [
            f"- **{_SYSTEM_NAMES[n.system]}**, {_cell(n.what)}: {_cell(n.reason)}"
            for n in report.not_checked
        ]
        lines.append("")
    if report.findings:
        lines += [
            "| severity | finding | what was seen | fix or investigate |",
            "| --- | --- | --- | --- |",
        ]
        for finding in report.findings:
            lines.append(
                f"| **{finding.severity.label}** | {_SYSTEM_NAMES[finding.system]}: "
                f"{_cell(finding.subject)}<br><sub>{finding.kind}</sub> | {_cell(finding.detail)} "
                f"| {_code(finding.command)} |"
            )
        lines.append("")
    if report.activity:
        lines += [f"<details><summary>Activity ({len(report.activity)})</summary>", ""]
        lines += [f"- {_SYSTEM_NAMES[a.system]}: {_cell(a.text)}" for a in report.activity]
        lines += ["", "</details>", ""]
    return _cut("\n".join(lines).rstrip("\n") + "\n", max_chars)


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    note = "\n… the report is cut here to fit; run `python -m infra audit --json` for all of it.\n"
    return text[: max_chars - len(note)].rsplit("\n", 1)[0] + note


def as_json(report: AuditReport) -> dict[str, Any]:
    scope = report.scope
    return {
        "stack": report.stack,
        "environment": scope.environment,
        "window": {
            "since_days": scope.since_days,
            "from": scope.window_start.isoformat(),
            "to": scope.now.isoformat(),
        },
        "unused_days": scope.unused_days,
        "rotation_days": scope.rotation_days,
        "skipped": list(scope.skipped),
        "complete": report.complete,
        "digest": digest(report),
        "counts": report.counts(),
        "findings": [f.as_dict() for f in report.findings],
        "activity": [{"system": a.system, "text": a.text} for a in report.activity],
        "not_checked": [
            {"system": n.system, "what": n.what, "reason": n.reason} for n in report.not_checked
        ],
    }


def render_json(report: AuditReport) -> str:
    return json.dumps(as_json(report), indent=2) + "\n"


def digest(report: AuditReport) -> str:
    """Changes when the findings change, not when only dates or counts in their text do: what
    the scheduled workflow compares to decide whether to comment on the audit issue."""
    lines = sorted(f"{f.severity.label} {f.kind} {f.subject}" for f in report.findings)
    lines += sorted(f"not-checked {n.system} {n.what}" for n in report.not_checked)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def part_from_json(document: Mapping[str, Any], stack: str) -> tuple[SourceResult, set[str]]:
    """A report another run wrote with `--json` (say, the AWS part, run where the stack's AWS role
    is available): its results, and the systems it checked."""
    try:
        if document["stack"] != stack:
            raise AuditError(f"the merged report is of stack '{document['stack']}', not '{stack}'")
        result = SourceResult(
            findings=[
                Finding(
                    f["system"],
                    f["kind"],
                    Severity[f["severity"].upper()],
                    f["subject"],
                    f["detail"],
                    f["command"],
                )
                for f in document["findings"]
            ],
            activity=[Activity(a["system"], a["text"]) for a in document["activity"]],
            not_checked=[
                NotChecked(n["system"], n["what"], n["reason"]) for n in document["not_checked"]
            ],
        )
        checked = set(SYSTEMS) - set(document["skipped"])
    except (KeyError, TypeError, AttributeError) as error:
        raise AuditError(
            f"the merged report is not what `python -m infra audit --json` writes ({error})"
        ) from None
    return result, checked
