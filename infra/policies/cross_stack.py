"""Across stacks (a pack sees one at a time): dev and prod declare nothing in common."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from infra.core import resource_types as types
from infra.core.config_sources import ENCRYPTED
from infra.policies.model import (
    MODAL_APP_DEPLOYMENT,
    MODAL_BUDGET,
    MODAL_CI_TOKEN,
    MODAL_ENVIRONMENT,
    MODAL_SECRET,
    Resource,
    Violation,
    known,
    modal_kind,
)

CROSS_STACK_POLICY = "stacks-share-nothing"
SHARED_CREDENTIAL_POLICY = "stacks-share-no-credential"


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


def _credentials(resource: Resource) -> list[tuple[str, str, str]]:
    """(kind, identity, how it is shown) of each credential a resource hands out or grants.
    An identity may be a secret (an adopted token id): it is compared, never shown."""
    p = resource.props
    kind = modal_kind(resource)
    found: list[tuple[str, str, str]] = []
    if kind == MODAL_ENVIRONMENT and isinstance(p.get("service_user_roles"), Mapping):
        for user, role in p["service_user_roles"].items():
            if role != "no-access":
                found.append(("Modal service user", str(user), repr(str(user))))
    if kind == MODAL_CI_TOKEN:
        user = p.get("service_user_name")
        if isinstance(user, str) and user:
            found.append(("Modal service user", user, repr(user)))
        token = p.get("token_id")
        # A stack file's `secure:` value reaches an offline render as one placeholder for all, so
        # only values seen in the clear (`pulumi config --show-secrets`) are compared.
        if isinstance(token, str) and known(token) and token and token != ENCRYPTED:
            found.append(("Modal token", token, "rentagpu:modalTokenId"))
    return found


def check_stacks_share_no_credential(stacks: Mapping[str, Sequence[Resource]]) -> list[Violation]:
    """A Modal service user or token that two stacks both use: whoever can obtain it for the
    lesser stack (a branch push, for dev's) reaches the other. AWS roles and GitHub environments
    are named per stack and caught by `check_stacks_share_nothing`; Pulumi tokens live in the
    workflows (`python -m infra access`)."""
    used: dict[tuple[str, str], dict[str, tuple[str, Resource]]] = defaultdict(dict)
    for stack, resources in stacks.items():
        for resource in resources:
            for kind, identity, shown in _credentials(resource):
                used[(kind, identity)].setdefault(stack, (shown, resource))
    violations = []
    for (kind, _), by_stack in sorted(used.items()):
        if len(by_stack) < 2:
            continue
        stack_names = sorted(by_stack)
        shown = next(iter(by_stack.values()))[0]
        where = " / ".join(f"{stack}:{resource.name}" for stack, (_, resource) in by_stack.items())
        violations.append(
            Violation(
                SHARED_CREDENTIAL_POLICY,
                where,
                f"{kind} {shown} is used by the {' and '.join(stack_names)} stacks: whoever can "
                f"obtain it for one reaches the other (a {kind.lower()} of dev is obtainable "
                "without prod's approval). Give each stack its own: leave CI's tokens to the "
                "program (it mints one service user per stack), and name each service user in "
                "one stack's modalServiceUserRoles only",
            )
        )
    return violations
