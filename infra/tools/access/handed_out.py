"""Credentials only the workflows name: the secrets a person sets (Pulumi backend tokens, the
GitHub read token, or anything unrecognised) and each job's own token."""

from __future__ import annotations

from collections import defaultdict

from infra.core import names
from infra.tools.access.graph import Graph, state_name
from infra.tools.access.model import Credential, Obtainer, Reach, Violation
from infra.tools.access.workflows import JobUse


def workflow_secrets(graph: Graph) -> None:
    """Secrets the workflows read that no stack declares: Pulumi tokens and the GitHub read token,
    set by a person; anything else is reported, since nothing here says what it reaches."""
    readers: dict[tuple[str | None, str], list[JobUse]] = defaultdict(list)
    for job in graph.jobs:
        for secret in sorted(job.secrets):
            for env in job.environments:
                readers[(graph.secret_location(job, env, {secret}), secret)].append(job)
    ci_secrets = {
        (token.location, name)
        for facts in graph.stacks.values()
        for token in facts.ci_tokens
        for name in token.secret_names
    }
    for (location, secret), jobs in sorted(
        readers.items(), key=lambda item: (str(item[0][0]), item[0][1])
    ):
        if (location, secret) in ci_secrets:
            continue
        where = f"GitHub environment {location!r}" if location else "GitHub repository secrets"
        stacks = sorted({job.stack for job in jobs if job.stack})
        if len(stacks) > 1 and "PULUMI" in secret:
            graph.violations.append(
                Violation(
                    f"{secret} ({where})",
                    f"one Pulumi token serves the {' and '.join(stacks)} stacks "
                    f"({', '.join(sorted({j.label for j in jobs}))}): give each stack its own, "
                    "with access to that stack only",
                )
            )
        credential = _person_set(graph, location, secret, where)
        if credential is None:
            graph.violations.append(
                Violation(
                    f"{secret} ({where})",
                    f"read by {', '.join(sorted({j.label for j in jobs}))}, but nothing says "
                    "what it reaches: use the names the README lists, or describe it in "
                    "infra/core/names.py and infra/tools/access/build.py",
                )
            )
            continue
        credential.obtainable_by = [
            graph.location_obtainer(location),
            *graph.job_obtainers([secret], location),
        ]
        graph.add(credential)
        if credential.name.startswith("Pulumi token of stack"):
            stack = credential.stack
            graph.credentials[state_name(stack)].obtainable_by.append(
                Obtainer(by=credential.name, via=credential.name)
            )


def _person_set(graph: Graph, location: str | None, secret: str, where: str) -> Credential | None:
    held = f"{where}: {secret} (set by a person)"
    if secret == names.GITHUB_ADMIN_TOKEN_SECRET:
        return Credential(
            f"GitHub admin token {secret} in a workflow",
            held,
            "repository",
            reaches=[
                Reach(
                    "github",
                    "environments' protection, secrets and variables; main's ruleset",
                    e,
                    "admin",
                )
                for e in ("dev", "prod")
            ],
        )
    if secret == names.GITHUB_READ_TOKEN_SECRET and location is None:
        return Credential(
            "GitHub read token",
            held,
            "repository",
            reaches=[
                Reach(
                    "github",
                    "the repository's settings, environments, rulesets, variables, secrets' names and public keys",
                    e,
                    "read",
                )
                for e in ("dev", "prod")
            ],
        )
    for stack, facts in graph.stacks.items():
        env = facts.environment
        readonly = names.readonly_environment(env)
        write = secret == names.PULUMI_TOKEN_SECRET and location == env
        read = (
            secret == names.PULUMI_TOKEN_SECRET and location is not None and location == readonly
        ) or (location is None and secret == names.pulumi_read_token_secret(env))
        if write or read:
            access = "write" if write else "read"
            return Credential(
                f"Pulumi token of stack {stack} ({access}, {location or 'repository'})",
                held,
                stack,
                reaches=[
                    Reach(
                        "pulumi",
                        f"stack {stack}: {'update' if write else 'read'} its state",
                        env,
                        access,
                    ),
                    Reach("pulumi", f"stack {stack}'s config and state secrets", env, "decrypt"),
                ],
            )
    return None


def job_tokens(graph: Graph) -> None:
    can_approve = [
        f.can_approve_prs for f in graph.stacks.values() if f.can_approve_prs is not None
    ]
    approving = not can_approve or any(can_approve)
    for job in graph.jobs:
        writes = sorted(k for k, v in job.permissions.items() if v == "write" and k != "id-token")
        if not writes:
            continue
        reaches = []
        if "pull-requests" in writes and approving:
            reaches.append(
                Reach(
                    "github",
                    "approve pull requests into main, which is the ruleset's review",
                    "prod",
                    "admin",
                )
            )
        env = job.environments[0]
        rule = graph.location_obtainer(env)
        graph.add(
            Credential(
                f"job token of {job.label}",
                f"GITHUB_TOKEN of the job ({', '.join(f'{w}: write' for w in writes)})",
                "repository",
                obtainable_by=[
                    Obtainer(
                        by=job.label
                        + (
                            " (the pull request's own code)"
                            if "pull_request" in job.triggers
                            else ""
                        ),
                        trigger=job.trigger_text(),
                        branch=rule.branch if env else job.branch_text(),
                        environment=env,
                        approval=rule.approval,
                        needs_prod_approval=rule.needs_prod_approval if env else False,
                    )
                ],
                reaches=reaches,
            )
        )
