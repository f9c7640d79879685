"""The credential graph: every credential the stacks create or read and every one the workflows hand
out, who can obtain it, and what it reaches; and the invariant checked over it.

Who can obtain a credential follows from where it lives, whatever the workflows say: a repository
secret, from a workflow on any branch; an environment's, from the branches its deployment policy
admits, after its reviewers approve; an AWS role, from whoever gets an OIDC token with the subject
it trusts. The jobs that receive it are listed too, as what is meant to happen. Some credentials
are held by holders of another (a Pulumi token decrypts a stack's config and state; a Modal deploy
runs code as the runtime role): those inherit that credential's need for approval.

The invariant (README "Two planes of authority"): no credential obtainable without a prod
reviewer's approval may deploy, write, administer or decrypt anything of prod; and dev's
credentials reach nothing of prod at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from infra.core import names
from infra.tools.access.model import Credential, Obtainer, Violation
from infra.tools.access.stack import StackFacts
from infra.tools.access.workflows import JobUse

ANY_BRANCH = Obtainer(
    by="a workflow on any branch of this repository (anyone who can push a branch)",
    trigger="push, pull_request",
    branch="any",
)
ADMIN = Obtainer(
    by="a repository or workspace administrator (README: Bootstrap)",
    approval="an administrator: prod authority itself",
    needs_prod_approval=True,
)


def state_name(stack: str) -> str:
    """The credential that is a stack's config and state, to whoever can decrypt them."""
    return f"stack {stack}: config and state (decryption)"


class Graph:
    """Builds the credentials of every stack from their facts and the workflows' jobs."""

    def __init__(self, stacks: Mapping[str, StackFacts], jobs: Sequence[JobUse]) -> None:
        self.stacks = stacks
        self.jobs = list(jobs)
        self.credentials: dict[str, Credential] = {}
        self.violations: list[Violation] = []
        self._environments = {
            name: (stack, env)
            for stack, f in stacks.items()
            for name, env in f.environments.items()
        }

    # Where a credential lives, and who that lets obtain it.
    def environment_obtainer(self, name: str, by: str | None = None) -> Obtainer:
        found = self._environments.get(name)
        if found is None:
            return Obtainer(
                by=by or f"a job naming environment {name!r}",
                trigger="any",
                branch="any (no stack declares this environment: GitHub creates it unprotected)",
                environment=name,
            )
        stack, env = found
        prod_review = env.reviewers and self.stacks[stack].environment == "prod"
        return Obtainer(
            by=by or f"a job in GitHub environment {name!r}",
            trigger="a workflow run naming the environment",
            branch=", ".join(env.branches) or "any",
            environment=name,
            approval=f"a required reviewer of {name!r}" if env.reviewers else None,
            needs_prod_approval=bool(prod_review),
        )

    def location_obtainer(self, location: str | None) -> Obtainer:
        return ANY_BRANCH if location is None else self.environment_obtainer(location)

    def oidc_obtainer(self, context: str) -> Obtainer:
        if context.startswith("environment:"):
            name = context.split(":", 1)[1]
            return self.environment_obtainer(name, f"a job in environment {name!r} (OIDC)")
        if context == names.PULL_REQUEST_CONTEXT:
            return Obtainer(
                by="a pull request from any branch of this repository (OIDC; forks get none)",
                trigger="pull_request",
                branch="any",
            )
        if context == names.MAIN_BRANCH_CONTEXT:
            return Obtainer(
                by="a job on main (OIDC): any merged pull request's code",
                trigger="push to main, schedule, workflow_dispatch",
                branch="main",
                approval="main's review rule (any writer; code owners), not a prod reviewer",
            )
        return Obtainer(
            by=f"a job whose OIDC subject ends {context!r}", trigger="any", branch="any"
        )

    def job_obtainers(self, secret_names: Iterable[str], location: str | None) -> list[Obtainer]:
        """The jobs that receive these secrets where they live."""
        wanted = set(secret_names)
        found = []
        for job in self.jobs:
            if not wanted & job.secrets:
                continue
            here = [e for e in job.environments if self.secret_location(job, e, wanted) == location]
            if not here:
                continue
            rule = self.location_obtainer(here[0])
            found.append(
                Obtainer(
                    by=job.label,
                    trigger=job.trigger_text(),
                    branch=rule.branch if location else job.branch_text(),
                    environment=here[0],
                    approval=rule.approval,
                    needs_prod_approval=rule.needs_prod_approval,
                )
            )
        return found

    def secret_location(self, job: JobUse, environment: str | None, wanted: set[str]) -> str | None:
        """Where GitHub takes a secret of these names from for a job in `environment`: the
        environment's own secret when one of that name lives there, else the repository's."""
        if environment is None:
            return None
        return environment if wanted & self.environment_secret_names(environment) else None

    def environment_secret_names(self, environment: str) -> set[str]:
        found = {names.PULUMI_TOKEN_SECRET}
        for facts in self.stacks.values():
            for token in facts.ci_tokens:
                if token.location == environment:
                    found |= set(token.secret_names)
        return found

    def add(self, credential: Credential) -> Credential:
        self.credentials[credential.name] = credential
        return credential
