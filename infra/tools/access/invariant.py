"""Who needs a prod reviewer's approval to obtain each credential, and what breaks the invariant;
`credential_graph` builds the whole graph (see `infra.tools.access.graph`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.tools.access import build, handed_out
from infra.tools.access.graph import Graph
from infra.tools.access.model import GUARDED, Obtainer, Violation
from infra.tools.access.stack import StackFacts
from infra.tools.access.workflows import JobUse


def resolve(graph: Graph) -> None:
    """Whether each credential needs prod's approval: every way to obtain it must (through the
    credential it comes with, for those held by another's holder). A greatest fixed point."""
    for credential in graph.credentials.values():
        credential.needs_prod_approval = True
    changed = True
    while changed:
        changed = False
        for credential in graph.credentials.values():
            needs = all(
                graph.credentials[o.via].needs_prod_approval
                if o.via in graph.credentials
                else o.needs_prod_approval
                for o in credential.obtainable_by
            )
            if needs != credential.needs_prod_approval:
                credential.needs_prod_approval, changed = needs, True
    for credential in graph.credentials.values():
        credential.obtainable_by = [
            Obtainer(
                **{
                    **o.__dict__,
                    "needs_prod_approval": graph.credentials[o.via].needs_prod_approval,
                }
            )
            if o.via in graph.credentials
            else o
            for o in credential.obtainable_by
        ]


def check(graph: Graph) -> None:
    for credential in graph.credentials.values():
        guarded = [
            r
            for r in credential.reaches
            if r.environment == "prod" and r.access in GUARDED and r.access != "decrypt"
        ]
        if guarded and not credential.needs_prod_approval:
            easiest = next(o for o in credential.obtainable_by if not _needs(graph, o))
            jobs = sorted({o.by for o in credential.obtainable_by if " / " in o.by})
            handed = f"; handed to {', '.join(jobs)}" if jobs else ""
            graph.violations.append(
                Violation(
                    credential.name,
                    f"obtainable without a prod reviewer's approval (by {easiest.by}{handed}) "
                    "and reaches " + "; ".join(f"{r.system} {r.access}: {r.what}" for r in guarded),
                )
            )
        if credential.stack == "dev":
            crossing = [r for r in credential.reaches if r.environment == "prod"]
            if crossing:
                graph.violations.append(
                    Violation(
                        credential.name,
                        "a dev credential reaches prod: " + "; ".join(r.what for r in crossing),
                    )
                )


def _needs(graph: Graph, obtainer: Obtainer) -> bool:
    if obtainer.via in graph.credentials:
        return graph.credentials[obtainer.via].needs_prod_approval
    return obtainer.needs_prod_approval


def credential_graph(stacks: Mapping[str, StackFacts], jobs: Sequence[JobUse]) -> Graph:
    graph = Graph(stacks, jobs)
    build.stack_state(graph)
    build.ci_tokens(graph)
    build.service_user_grants(graph)
    build.aws_roles(graph)
    build.runtime(graph)
    handed_out.workflow_secrets(graph)
    handed_out.job_tokens(graph)
    build.admins(graph)
    resolve(graph)
    check(graph)
    return graph
