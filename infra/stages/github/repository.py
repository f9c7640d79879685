"""What GitHub says about the repository and its owner, and what that rules out, before anything
is created.

The OIDC subjects the AWS roles trust are built from the numeric ids of the repository and its
owner (`names.GITHUB_SUBJECT_CLAIMS`), looked up through the stack's GitHub provider. The same
lookups tell whether the owner is a user or an organization and whether the repository is private,
which decide what GitHub accepts: teams exist only in organizations; required reviewers on a
private repository need GitHub Enterprise Cloud; rulesets on a private repository need a paid plan
(docs.github.com: "Deployments and environments", and the gated-feature notes on environments and
rulesets). A stack that asks for what GitHub would refuse, or silently ignore, stops at preview
with every such problem named, instead of failing halfway through `pulumi up`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_github as github

from infra.core import names
from infra.core.config import GitHubConfig

USER = "User"
ORGANIZATION = "Organization"
# Organization plans that allow required reviewers on private repositories.
ENTERPRISE_PLANS = ("enterprise",)


@dataclass(frozen=True)
class RepositoryFacts:
    owner_id: int
    owner_type: str  # "User" or "Organization"; "" when GitHub did not say
    repository_id: int  # 0 when the repository was not found
    visibility: str  # public, private or internal
    plan: str | None  # the organization's plan, when GitHub shows it to this token


def facts_from(
    owner_body: str, repository_id: int, visibility: str, org_code: int, org_body: str
) -> RepositoryFacts:
    """Facts from the lookups' answers: `GET users/OWNER` (which answers for users and
    organizations alike, with `id` and `type`), `get_repository`, and `GET orgs/OWNER` (404 for a
    user; its `plan` is shown to organization owners only)."""
    owner = _json_object(owner_body)
    plan = None
    if org_code == 200:
        plan_object = _json_object(org_body).get("plan")
        if isinstance(plan_object, dict) and isinstance(plan_object.get("name"), str):
            plan = plan_object["name"].lower()
    return RepositoryFacts(
        owner_id=int(owner.get("id") or 0),
        owner_type=str(owner.get("type") or ""),
        repository_id=int(repository_id or 0),
        visibility=str(visibility or "public"),
        plan=plan,
    )


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def problems(
    facts: RepositoryFacts, cfg: GitHubConfig, is_prod: bool
) -> tuple[list[str], list[str]]:
    """(errors, warnings) about what this stack asks of this repository. Errors stop the preview."""
    errors: list[str] = []
    warnings: list[str] = []
    where = f"{cfg.owner}/{cfg.repository}"
    if not facts.owner_id or not facts.repository_id:
        errors.append(
            f"GitHub does not show repository {where} to this token (or its owner "
            f"{cfg.owner!r}): check rentagpu:githubOwner and rentagpu:githubRepository (exact "
            "case), and that GITHUB_TOKEN can read the repository"
        )
        return errors, warnings
    private = facts.visibility in ("private", "internal")
    if facts.owner_type == USER and cfg.reviewer_teams:
        errors.append(
            f"rentagpu:reviewerTeams: {where} belongs to the user {cfg.owner!r}, and teams exist "
            "only in organizations; list people in rentagpu:reviewers instead"
        )
    wants_reviewers = is_prod and bool(cfg.reviewers or cfg.reviewer_teams)
    if private and wants_reviewers:
        if facts.owner_type == USER:
            errors.append(
                f"rentagpu:reviewers: {where} is {facts.visibility}, and GitHub enforces required "
                "reviewers on private repositories only on GitHub Enterprise Cloud, which a "
                "personal account does not have: without them prod deploys would wait for "
                "nobody. Make the repository public or move it to an organization on Enterprise"
            )
        elif facts.plan is not None and facts.plan not in ENTERPRISE_PLANS:
            errors.append(
                f"rentagpu:reviewers: {where} is {facts.visibility} and organization "
                f"{cfg.owner!r} is on the {facts.plan!r} plan; required reviewers on private "
                "repositories need GitHub Enterprise Cloud, so prod deploys would wait for "
                "nobody. Make the repository public or upgrade the organization"
            )
        elif facts.plan is None:
            warnings.append(
                f"{where} is {facts.visibility}; required reviewers on private repositories need "
                f"GitHub Enterprise Cloud, and this token cannot see {cfg.owner!r}'s plan. On any "
                "other plan GitHub stores the reviewers but never pauses a deploy for them"
            )
    if private and cfg.owns_repository_settings:
        if facts.owner_type == ORGANIZATION and facts.plan == "free":
            errors.append(
                f"rentagpu:ownsRepositorySettings: {where} is {facts.visibility} and organization "
                f"{cfg.owner!r} is on the free plan, where rulesets protect public repositories "
                "only: main would be unprotected. Make the repository public or use a paid plan"
            )
        elif facts.owner_type == USER:
            warnings.append(
                f"{where} is {facts.visibility} and belongs to the user {cfg.owner!r}: rulesets "
                "on private repositories need GitHub Pro; on GitHub Free the ruleset on main is "
                "refused"
            )
    return errors, warnings


def lookup(
    cfg: GitHubConfig, is_prod: bool, opts: pulumi.InvokeOutputOptions
) -> pulumi.Output[RepositoryFacts]:
    """The repository's facts through the stack's GitHub provider; raises `pulumi.RunError`,
    naming every problem, when the stack asks for what GitHub would refuse."""
    owner = github.get_rest_api_output(endpoint=f"users/{cfg.owner}", opts=opts)
    organization = github.get_rest_api_output(endpoint=f"orgs/{cfg.owner}", opts=opts)
    repository = github.get_repository_output(full_name=f"{cfg.owner}/{cfg.repository}", opts=opts)

    def checked(values: Sequence) -> RepositoryFacts:
        facts = facts_from(*values)
        errors, warnings = problems(facts, cfg, is_prod)
        for warning in warnings:
            pulumi.log.warn(warning)
        if errors:
            listed = "\n".join(f"  - {e}" for e in errors)
            raise pulumi.RunError(
                f"GitHub repository {cfg.owner}/{cfg.repository} cannot take this stack; nothing "
                f"was changed:\n{listed}"
            )
        return facts

    return pulumi.Output.all(
        owner.body, repository.repo_id, repository.visibility, organization.code, organization.body
    ).apply(checked)


def subject_template_problem(use_default: bool, claim_keys: Sequence[str]) -> str | None:
    """Why the repository's OIDC subject template is not the one the CI roles trust, if it is not."""
    if not use_default and tuple(claim_keys) == names.GITHUB_SUBJECT_CLAIMS:
        return None
    found = "GitHub's default" if use_default else f"the claims {list(claim_keys)}"
    return (
        f"the repository's OIDC subject template is {found}, not {list(names.GITHUB_SUBJECT_CLAIMS)}"
        ", so GitHub would issue subjects the CI roles do not trust. The stack that owns the "
        "repository settings (rentagpu:ownsRepositorySettings) declares it: run its `pulumi up` "
        "first"
    )
