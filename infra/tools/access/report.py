"""The credential graph of a checkout, and how it is shown: one stack's JSON document (the contract
in `infra.tools.access`), text for a terminal, and the README's table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.tools.access.graph import Graph
from infra.tools.access.invariant import credential_graph
from infra.tools.access.model import Violation
from infra.tools.access.stack import stack_facts
from infra.tools.access.workflows import job_uses

README_BEGIN = "<!-- credential table: python -m infra access --readme -->"
README_END = "<!-- end of credential table -->"


def stack_graph(project_dir: Path | None = None) -> Graph:
    """Render every stack of the checkout offline and read its workflows."""
    from infra.core.config import parse_config
    from infra.tools.offline import render
    from infra.tools.plan import PROJECT_DIR, evaluate_stacks, load_config

    root = project_dir or PROJECT_DIR
    stacks, renderings = {}, []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        cfg = parse_config(stack, load_config(stack, project_dir=root).raw)
        rendering = render(cfg)
        renderings.append(rendering)
        stacks[stack] = stack_facts(rendering, cfg.environment)
    graph = credential_graph(stacks, list(job_uses(root / ".github" / "workflows")))
    # Credentials two stacks share in what they declare (Modal service users, adopted tokens).
    for shared in evaluate_stacks(renderings):
        if shared.policy == "stacks-share-no-credential":
            graph.violations.append(Violation(shared.resource, shared.message))
    return graph


def _concerns(graph: Graph, stack: str) -> set[str]:
    """The credentials that belong to `stack` or reach anything of it."""
    environment = graph.stacks[stack].environment if stack in graph.stacks else stack
    return {
        c.name
        for c in graph.credentials.values()
        if c.stack == stack or any(r.environment == environment for r in c.reaches)
    }


def access_document(graph: Graph, stack: str) -> dict[str, Any]:
    if stack not in graph.stacks:
        raise SystemExit(f"access: no stack {stack!r} here (stacks: {', '.join(graph.stacks)})")
    concerned = _concerns(graph, stack)
    credentials = [c for name, c in sorted(graph.credentials.items()) if name in concerned]
    violations = [
        v
        for v in graph.violations
        if v.credential in concerned or v.credential not in graph.credentials
    ]
    return {
        "stack": stack,
        "credentials": [c.as_dict() for c in credentials],
        "violations": [v.as_dict() for v in violations],
    }


def format_text(document: dict[str, Any]) -> str:
    lines = [f"stack {document['stack']}: {len(document['credentials'])} credentials"]
    for c in document["credentials"]:
        approval = "needs prod approval" if c["needs_prod_approval"] else "NO prod approval needed"
        lines += ["", f"{c['name']}  [{approval}]", f"  held in: {c['held_in']}"]
        for o in c["obtainable_by"]:
            detail = ", ".join(
                f"{k}: {o[k]}" for k in ("trigger", "branch", "environment", "approval") if o[k]
            )
            lines.append(f"  obtainable by: {o['by']}" + (f" ({detail})" if detail else ""))
        for r in c["reaches"]:
            lines.append(f"  reaches: {r['system']} {r['environment']} {r['access']}: {r['what']}")
        if not c["reaches"]:
            lines.append("  reaches: nothing of either stack")
    if document["violations"]:
        lines += ["", f"VIOLATIONS ({len(document['violations'])}):"]
        lines += [f"  - {v['credential']}: {v['message']}" for v in document["violations"]]
    else:
        lines += ["", "no violation: nothing obtainable without prod's approval reaches prod"]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def readme_table(graph: Graph) -> str:
    """One row per credential of every stack: what the README's "What each credential can touch"
    shows (a test keeps the README equal to it)."""
    rows = [
        README_BEGIN,
        "| credential | lives in | obtainable by | prod approval | reaches |",
        "|---|---|---|---|---|",
    ]
    for name, c in sorted(graph.credentials.items()):
        # Where it lives decides who can obtain it; the jobs that receive it are in `--json`.
        obtainers = "; ".join(
            f"holders of {o.via}" if o.via else o.by
            for o in c.obtainable_by
            if o.via or " / " not in o.by or len(c.obtainable_by) == 1
        )
        reached = dict.fromkeys(f"{r.environment} {r.system} {r.access}" for r in c.reaches)
        reaches = "; ".join(reached) or "nothing"
        rows.append(
            f"| {_cell(name)} | {_cell(c.held_in)} | {_cell(obtainers)} | "
            f"{'yes' if c.needs_prod_approval else 'no'} | {_cell(reaches)} |"
        )
    rows.append(README_END)
    return "\n".join(rows)
