"""The credentials of the graph the stacks declare or imply, kind by kind (those only the workflows
name are `handed_out`'s), then who needs approval and what breaks the invariant (see
`infra.tools.access.graph`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from infra.core import names
from infra.tools.access.graph import ADMIN, Graph, state_name
from infra.tools.access.model import Credential, Obtainer, Reach
from infra.tools.access.workflows import JobUse

# IAM actions that only read (the rest of a role's policy counts as writing).
READ_VERBS = ("Get", "List", "Describe", "Head")


def deploy_reaches(environment: str, what: str) -> list[Reach]:
    """What deploying to a Modal environment reaches: its apps and secrets, and, through the code
    it runs there, the runtime role's access to the stack's bucket."""
    return [
        Reach(
            "modal",
            f"{what}: apps and secrets of Modal environment {environment!r}",
            environment,
            "deploy",
        ),
        Reach(
            "aws",
            f"the {environment} bucket's objects, as the runtime role (code it deploys runs with it)",
            environment,
            "write",
        ),
    ]


def token_reaches(role: str, environment: str, what: str) -> list[Reach]:
    if role == "contributor":
        return deploy_reaches(environment, what)
    return [
        Reach("modal", f"{what}: Modal environment {environment!r}, read only", environment, "read")
    ]


def ci_tokens(graph: Graph) -> None:
    for stack, facts in graph.stacks.items():
        env = facts.environment
        for token in facts.ci_tokens:
            where = (
                f"GitHub environment {token.location!r}"
                if token.location
                else "GitHub repository secrets"
            )
            origin = (
                "from stack config (the fallback)" if token.adopted else "minted by `pulumi up`"
            )
            credential = graph.add(
                Credential(
                    name=f"Modal {token.purpose} token of {stack}",
                    held_in=f"{where}: {' and '.join(token.secret_names)} ({origin})",
                    stack=stack,
                )
            )
            credential.obtainable_by = [
                graph.location_obtainer(token.location),
                *graph.job_obtainers(token.secret_names, token.location),
            ]
            if token.adopted:
                credential.obtainable_by.append(
                    Obtainer(by=state_name(stack), via=state_name(stack))
                )
                credential.held_in += f"; also in {state_name(stack).split(':')[0]}'s config"
            credential.reaches = token_reaches(token.role, env, f"{token.role} token")


def service_user_grants(graph: Graph) -> None:
    for stack, facts in graph.stacks.items():
        for user, role in sorted(facts.service_user_grants.items()):
            credential = graph.add(
                Credential(
                    name=f"Modal service user {user!r} of {stack}",
                    held_in="its token, made and kept outside this project (modalServiceUserRoles)",
                    stack=stack,
                    obtainable_by=[
                        Obtainer(
                            by="whoever holds its token: nothing here shows who, or that it "
                            "needs prod's approval",
                            branch="unknown",
                        )
                    ],
                )
            )
            credential.reaches = token_reaches(role, facts.environment, f"{role} service user")


def _aws_reaches(environment: str, actions: Sequence[tuple[str, tuple[str, ...]]]) -> list[Reach]:
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for action, resources in actions:
        verb = action.split(":", 1)[-1]
        access = "read" if verb.startswith(READ_VERBS) else "write"
        targets = ", ".join(
            sorted({r.rsplit("/", 1)[-1].rsplit(":", 1)[-1] or r for r in resources})
        )
        grouped[(access, targets)].append(action)
    return [
        Reach("aws", f"{', '.join(sorted(acts))} on {targets}", environment, access)  # type: ignore[arg-type]
        for (access, targets), acts in sorted(grouped.items())
    ]


def aws_roles(graph: Graph) -> None:
    for stack, facts in graph.stacks.items():
        for role in facts.roles.values():
            rule = graph.oidc_obtainer(role.context)
            jobs = [
                Obtainer(
                    by=job.label,
                    trigger=job.trigger_text(),
                    branch=rule.branch,
                    environment=env,
                    approval=rule.approval,
                    needs_prod_approval=rule.needs_prod_approval,
                )
                for job in graph.jobs
                if job.id_token
                for env in job.environments
                if _assumes(job, env, role.context)
            ]
            graph.add(
                Credential(
                    name=f"AWS role {role.name}",
                    held_in=f"AWS IAM, assumed through GitHub OIDC (subject context {role.context!r})",
                    stack=stack,
                    obtainable_by=[rule, *jobs],
                    reaches=_aws_reaches(facts.environment, role.actions),
                )
            )


def _assumes(job: JobUse, environment: str | None, context: str) -> bool:
    if context.startswith("environment:"):
        return environment == context.split(":", 1)[1]
    if environment is not None:
        return False
    if context == names.PULL_REQUEST_CONTEXT:
        return "pull_request" in job.triggers
    return context == names.MAIN_BRANCH_CONTEXT and bool(
        {"push", "schedule", "workflow_dispatch"} & set(job.triggers)
    )


def runtime(graph: Graph) -> None:
    """The runtime principal: the role containers assume, or the key in the Modal secret."""
    for stack, facts in graph.stacks.items():
        env = facts.environment
        deployers = [
            c.name
            for c in graph.credentials.values()
            if any(
                r.system == "modal" and r.access == "deploy" and r.environment == env
                for r in c.reaches
            )
        ]
        bucket = Reach("aws", f"the {env} bucket: read inputs, create outputs", env, "write")
        if facts.access_key:
            credential = Credential(
                name=f"AWS access key of rentagpu-{env}-runtime",
                held_in=f"{state_name(stack).split(':')[0]}'s state and the Modal runtime secret",
                stack=stack,
                obtainable_by=[Obtainer(by=state_name(stack), via=state_name(stack))],
                reaches=[bucket],
            )
        else:
            credential = Credential(
                name=f"AWS role {names.role_name(env, 'runtime')}",
                held_in=f"Modal containers of the app in environment {env!r} (identity token)",
                stack=stack,
                reaches=[bucket],
            )
        credential.obtainable_by += [Obtainer(by=f"deploying with {d}", via=d) for d in deployers]
        graph.add(credential)


def stack_state(graph: Graph) -> None:
    for stack, facts in graph.stacks.items():
        reaches = [Reach("pulumi", f"stack {stack}'s secrets", facts.environment, "decrypt")]
        if facts.provider_token_in_state:
            reaches += [
                Reach("github", "the GitHub provider's token, stored in its inputs", e, "admin")
                for e in ("dev", "prod")
            ]
        graph.add(
            Credential(
                name=state_name(stack),
                held_in="the Pulumi backend, encrypted with the stack's key",
                stack=stack,
                obtainable_by=[ADMIN],
                reaches=reaches,
            )
        )


def admins(graph: Graph) -> None:
    for system, what in (
        (
            "github",
            "the admin's GitHub token (GITHUB_TOKEN of the admin's `pulumi up`; never stored)",
        ),
        ("modal", "a workspace manager's Modal token (MODAL_TOKEN_* of the admin's `pulumi up`)"),
        ("aws", "the admin's AWS credentials (the admin's `pulumi up`)"),
    ):
        graph.add(
            Credential(
                what,
                "the admin's own shell, for `pulumi up` of the governance plane",
                "repository",
                obtainable_by=[ADMIN],
                reaches=[
                    Reach(system, "everything of the stack", e, "admin") for e in ("dev", "prod")
                ],  # type: ignore[arg-type]
            )
        )
