"""Policies `prod-environment-protected` and `prod-deploys-from-main-only`: the prod GitHub
environment (and prod-readonly) are protected and admit main only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from infra.core import resource_types as types
from infra.core.wire import UNKNOWN
from infra.policies.model import (
    PROD,
    PROD_READONLY,
    PolicyContext,
    Resource,
    as_list,
    known,
)


def is_github_environment(resource: Resource, name: str = PROD) -> bool:
    return resource.type == types.GITHUB_ENVIRONMENT and resource.props.get("environment") == name


def check_prod_environment(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """The prod environment needs reviewers, no self-review, no admin bypass, custom branches.

    The deploy role trusts any job that names this environment, so the environment's protection
    rules are the only thing between a branch push and production credentials. `prod-readonly`
    has no reviewers by design, but its credentials can decrypt prod's config, so it gets the
    same branch restriction and no admin bypass.
    """
    if is_github_environment(resource, PROD_READONLY):
        yield from _branch_protection_gaps(resource, PROD_READONLY)
        return
    if not is_github_environment(resource):
        return
    props = resource.props
    where = f"GitHub environment '{PROD}' ({resource.name})"

    reviewers = props.get("reviewers")
    if known(reviewers):
        count = 0
        for entry in as_list(reviewers):
            if isinstance(entry, Mapping):
                for kind in ("users", "teams"):
                    ids = entry.get(kind)
                    count += len(as_list(ids)) if known(ids) else 1
        if count == 0:
            yield (
                f"{where} has no required reviewers, so any push that reaches it deploys: set "
                "rentagpu:reviewers (GitHub logins) and/or rentagpu:reviewerTeams"
            )

    prevent = props.get("preventSelfReview")
    if known(prevent) and prevent is not True:
        yield f"{where} lets a reviewer approve their own deploy: set prevent_self_review=True"

    yield from _branch_protection_gaps(resource, PROD)


def _branch_protection_gaps(resource: Resource, name: str) -> Iterator[str]:
    """No admin bypass, and custom deployment branch policies (which the stack check pins)."""
    props = resource.props
    where = f"GitHub environment '{name}' ({resource.name})"
    bypass = props.get("canAdminsBypass")
    if known(bypass) and bypass is not False:
        yield (
            f"{where} lets administrators skip its protection rules (the provider defaults "
            "can_admins_bypass to true): set can_admins_bypass=False"
        )

    policy = props.get("deploymentBranchPolicy")
    if known(policy):
        custom = policy.get("customBranchPolicies") if isinstance(policy, Mapping) else None
        protected = policy.get("protectedBranches") if isinstance(policy, Mapping) else None
        if not isinstance(policy, Mapping) or (
            known(custom) and known(protected) and (custom is not True or protected is not False)
        ):
            yield (
                f"{where} does not restrict which branches may deploy: set "
                "deployment_branch_policy(protected_branches=False, custom_branch_policies=True) "
                "and declare one deployment policy for 'main'"
            )


def check_prod_deploys_from_main_only(
    resources: Sequence[Resource], ctx: PolicyContext
) -> Iterator[tuple[Resource | None, str]]:
    """Stack level: `prod` and `prod-readonly` each have exactly one deployment policy: `main`."""
    yield from _main_only(
        resources,
        ctx,
        PROD,
        "deploys would run without required reviewers; declare it (infra/stages/github/component.py) before the "
        "deploy role",
    )
    yield from _main_only(
        resources,
        ctx,
        PROD_READONLY,
        "prod's drift role trusts it, and GitHub creates an environment a job names but nobody "
        "declared, unprotected; declare it (infra/stages/github/component.py) before the drift role",
    )


def _main_only(
    resources: Sequence[Resource], ctx: PolicyContext, name: str, if_missing: str
) -> Iterator[tuple[Resource | None, str]]:
    environments = [r for r in resources if is_github_environment(r, name)]
    if not environments and ctx.environment == PROD:
        yield (
            None,
            f"the {PROD} stack declares no GitHub environment '{name}': {if_missing}",
        )
    for environment in environments:
        repository = environment.props.get("repository")
        patterns: list[str] = []
        for policy in resources:
            if policy.type != types.GITHUB_DEPLOYMENT_POLICY:
                continue
            props = policy.props
            if props.get("environment") != name:
                continue
            if known(repository) and props.get("repository") not in (repository, UNKNOWN):
                continue
            branch, tag = props.get("branchPattern"), props.get("tagPattern")
            if tag:
                patterns.append(f"tag {tag}")
            if branch or not tag:
                patterns.append(str(branch))
        if patterns == ["main"]:
            continue
        if not patterns:
            found = "no deployment policy, so no branch can deploy and the rule is unreviewable"
        else:
            found = "deployment policies for " + ", ".join(repr(p) for p in sorted(patterns))
        yield (
            environment,
            f"GitHub environment '{name}' must deploy from main only, but it has {found}: "
            "declare exactly one RepositoryEnvironmentDeploymentPolicy with branch_pattern='main'",
        )
