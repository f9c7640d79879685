"""Across stacks (a pack sees one at a time): dev and prod declare nothing in common."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from infra.core import resource_types as types
from infra.policies.model import (
    MODAL_APP_DEPLOYMENT,
    MODAL_BUDGET,
    MODAL_ENVIRONMENT,
    MODAL_SECRET,
    Resource,
    Violation,
    known,
    modal_kind,
)

CROSS_STACK_POLICY = "stacks-share-nothing"


def _identity(resource: Resource) -> tuple[str, ...] | None:
    """What a resource is called where it lives: two declarations with one identity collide."""
    p = resource.props

    def key(*parts: Any) -> tuple[str, ...] | None:
        if any(part is None or not known(part) for part in parts):
            return None
        return tuple(str(part) for part in parts)

    kind = modal_kind(resource)
    if kind == MODAL_ENVIRONMENT:
        return key("Modal environment", p.get("environment_name"))
    if kind == MODAL_SECRET:
        return key("Modal secret", p.get("environment_name"), p.get("secret_name"))
    if kind == MODAL_APP_DEPLOYMENT:
        return key("Modal app", p.get("environment_name"), p.get("app_name"))
    if kind == MODAL_BUDGET:
        return key("Modal budget", p.get("environment_name"))
    by_type: dict[str, tuple[str, tuple[str, ...]]] = {
        types.AWS_ROLE: ("IAM role", ("name",)),
        types.AWS_USER: ("IAM user", ("name",)),
        types.AWS_POLICY: ("IAM policy", ("name",)),
        types.AWS_OIDC_PROVIDER: ("IAM OIDC provider", ("url",)),
        types.AWS_BUCKET: ("S3 bucket", ("bucket",)),
        types.GITHUB_ENVIRONMENT: ("GitHub environment", ("repository", "environment")),
        types.GITHUB_DEPLOYMENT_POLICY: (
            "GitHub deployment policy",
            ("repository", "environment", "branchPattern"),
        ),
        types.GITHUB_ENVIRONMENT_SECRET: (
            "GitHub environment secret",
            ("repository", "environment", "secretName"),
        ),
        types.GITHUB_ENVIRONMENT_VARIABLE: (
            "GitHub environment variable",
            ("repository", "environment", "variableName"),
        ),
        types.GITHUB_REPOSITORY_SECRET: ("GitHub repository secret", ("repository", "secretName")),
        types.GITHUB_REPOSITORY_VARIABLE: (
            "GitHub repository variable",
            ("repository", "variableName"),
        ),
        types.GITHUB_RULESET: ("GitHub ruleset", ("repository", "name")),
    }
    if resource.type not in by_type:
        return None
    label, fields = by_type[resource.type]
    return key(label, *(p.get(f) for f in fields))


def check_stacks_share_nothing(stacks: Mapping[str, Sequence[Resource]]) -> list[Violation]:
    """Anything two stacks both declare: each would overwrite or delete the other's.

    Per-environment objects must carry their environment in their names; repository- and
    account-wide ones (MODAL_APP_NAME, the main ruleset, the OIDC providers) belong to one stack
    (rentagpu:ownsRepositorySettings / rentagpu:ownsAccountSingletons).
    """
    declared: dict[tuple[str, ...], list[tuple[str, Resource]]] = defaultdict(list)
    for stack, resources in stacks.items():
        for resource in resources:
            identity = _identity(resource)
            if identity is not None:
                declared[identity].append((stack, resource))
    violations = []
    for identity, owners in sorted(declared.items()):
        stack_names = sorted({stack for stack, _ in owners})
        if len(stack_names) < 2:
            continue
        label, parts = identity[0], identity[1:]
        where = " / ".join(f"{stack}:{resource.name}" for stack, resource in owners)
        violations.append(
            Violation(
                CROSS_STACK_POLICY,
                where,
                f"{label} {'/'.join(parts)!r} is declared by the {' and '.join(stack_names)} "
                "stacks, so each would overwrite or delete the other's: give each stack its own "
                "(names from infra/core/names.py carry the environment) or let exactly one stack own "
                "it (rentagpu:ownsRepositorySettings / rentagpu:ownsAccountSingletons)",
            )
        )
    return violations
