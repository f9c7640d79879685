"""The markdown of a report: a title, one section per changed resource, a table of properties;
cut to fit a GitHub issue."""

from __future__ import annotations

import html

from infra.tools.report.changes import Report, ResourceChange

MAX_ROWS_PER_RESOURCE = 40
DEFAULT_MAX_CHARS = 60_000  # a GitHub issue body holds 65,536 characters

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
