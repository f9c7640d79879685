"""What a rendered stack says about credentials: its GitHub environments' protection, CI's Modal
tokens and where GitHub keeps them, its AWS roles' trust and permissions, and what its config and
state hold that decrypting them would hand over."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.core import names
from infra.core import resource_types as types
from infra.tools.offline import Rendering


@dataclass(frozen=True)
class EnvironmentFacts:
    name: str
    reviewers: bool  # required reviewers, people or teams
    branches: tuple[str, ...]  # what its deployment branch policy admits


@dataclass(frozen=True)
class CiToken:
    purpose: str  # deploy or read
    role: str  # contributor or viewer
    service_user: str  # "" when adopted
    adopted: bool  # from stack config (the fallback): then config and state hold it
    location: str | None  # GitHub environment, None for repository secrets
    secret_names: tuple[str, str]


@dataclass(frozen=True)
class RoleFacts:
    purpose: str
    name: str
    context: str  # the OIDC subject's context it trusts (environment:X, pull_request, ref:...)
    actions: tuple[tuple[str, tuple[str, ...]], ...]  # (action, resources) of its Allow


@dataclass
class StackFacts:
    stack: str
    environment: str
    environments: dict[str, EnvironmentFacts] = field(default_factory=dict)
    ci_tokens: list[CiToken] = field(default_factory=list)
    roles: dict[str, RoleFacts] = field(default_factory=dict)
    service_user_grants: dict[str, str] = field(default_factory=dict)  # modalServiceUserRoles
    access_key: bool = False  # access-key mode: a runtime key in state and the Modal secret
    provider_token_in_state: bool = False  # a GitHub provider whose inputs hold a token
    can_approve_prs: bool | None = None  # None: this stack does not declare the setting


def _raw(resource: Any) -> Mapping[str, Any]:
    return resource.raw_inputs


def _purpose(name: str, environment: str) -> str | None:
    for purpose in names.CI_TOKEN_ROLES:
        if name.startswith(f"{environment}-ci-{purpose}-token-"):
            return purpose
    return None


def _subject_context(trust: str) -> str:
    document = json.loads(trust)
    for statement in document.get("Statement", []):
        for block in (statement.get("Condition") or {}).values():
            for key, value in block.items():
                if key == f"{names.GITHUB_OIDC_HOST}:sub":
                    # repository_owner_id:ID:repository_id:ID:CONTEXT (names.github_subject)
                    return str(value).split(":", 4)[-1]
    return ""


def _allowed(policy: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    found = []
    for statement in json.loads(policy).get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action") or statement.get("NotAction") or []
        resources = statement.get("Resource") or statement.get("NotResource") or []
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        found += [(str(a), tuple(str(r) for r in resources)) for a in actions]
    return tuple(found)


def stack_facts(rendering: Rendering, environment: str) -> StackFacts:
    facts = StackFacts(rendering.stack, environment)
    branches: dict[str, list[str]] = {}
    for r in rendering.of_type(types.GITHUB_DEPLOYMENT_POLICY):
        branches.setdefault(str(_raw(r).get("environment")), []).append(
            str(_raw(r).get("branchPattern"))
        )
    for r in rendering.of_type(types.GITHUB_ENVIRONMENT):
        raw = _raw(r)
        reviewers = any(
            (entry.get("users") or entry.get("teams")) for entry in raw.get("reviewers") or []
        )
        name = str(raw.get("environment"))
        facts.environments[name] = EnvironmentFacts(name, reviewers, tuple(branches.get(name, ())))
    for r in rendering.of_type(types.MODAL_CI_TOKEN):
        purpose = _purpose(r.name, environment)
        if purpose is None:
            continue
        raw = _raw(r)
        location, secret_names = names.ci_token_location(environment, purpose)
        facts.ci_tokens.append(
            CiToken(
                purpose=purpose,
                role=str(raw.get("role")),
                service_user=str(raw.get("service_user_name") or ""),
                adopted=raw.get("token_secret") is not None,
                location=location,
                secret_names=secret_names,
            )
        )
    policies = {
        str(_raw(r).get("role")): str(_raw(r).get("policy"))
        for r in rendering.of_type(types.AWS_ROLE_POLICY)
    }
    for purpose in names.ci_role_contexts(environment):
        role_name = names.role_name(environment, purpose)
        for r in rendering.of_type(types.AWS_ROLE):
            if _raw(r).get("name") == role_name:
                facts.roles[purpose] = RoleFacts(
                    purpose,
                    role_name,
                    _subject_context(str(_raw(r).get("assumeRolePolicy"))),
                    _allowed(policies.get(role_name, "{}")),
                )
    for r in rendering.of_type(types.MODAL_ENVIRONMENT):
        grants = _raw(r).get("service_user_roles") or {}
        facts.service_user_grants = {
            str(user): str(role) for user, role in grants.items() if role != "no-access"
        }
    facts.access_key = bool(rendering.of_type(types.AWS_ACCESS_KEY))
    facts.provider_token_in_state = any(
        _raw(r).get("token") for r in rendering.of_type("pulumi:providers:github")
    )
    for r in rendering.of_type(types.GITHUB_WORKFLOW_PERMISSIONS):
        facts.can_approve_prs = bool(_raw(r).get("canApprovePullRequestReviews"))
    return facts
