"""Policy `environment-isolation`: per-environment names carry this stack's environment only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.core import resource_types as types
from infra.core.config_schema import ENVIRONMENTS
from infra.policies.model import (
    GITHUB_ENVIRONMENT_SCOPED,
    PolicyContext,
    Resource,
    as_text,
    known,
    modal_kind,
    words,
)


def _isolation_fields(resource: Resource) -> list[tuple[str, Any]]:
    """(what, value) pairs that must carry the stack's environment."""
    props = resource.props
    if resource.type in (types.AWS_ROLE, types.AWS_USER, types.AWS_POLICY):
        kind = {
            types.AWS_ROLE: "IAM role",
            types.AWS_USER: "IAM user",
            types.AWS_POLICY: "IAM policy",
        }[resource.type]
        return [(f"{kind} name", props.get("name")), (f"{kind} path", props.get("path") or "/")]
    if resource.type in GITHUB_ENVIRONMENT_SCOPED:
        return [("GitHub environment", props.get("environment"))]
    if modal_kind(resource):
        return [("Modal environment", props.get("environment_name"))]
    return []


def check_environment_isolation(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """Per-environment names carry this stack's environment, and no other.

    dev and prod share an AWS account, a GitHub repository and a Modal workspace; names are what
    keeps a dev deploy from touching a prod role, environment or secret.
    """
    environment = ctx.environment
    if not environment:
        return
    others = [e for e in ENVIRONMENTS if e != environment]
    for what, value in _isolation_fields(resource):
        if not known(value):
            continue
        text = as_text(value)
        if text is None:
            yield (
                f"{resource.name} has no explicit {what}: set one that carries "
                f"'{environment}' (infra/core/names.py)"
            )
            continue
        tokens = words(text)
        foreign = [e for e in others if e in tokens]
        if environment not in tokens or foreign:
            yield (
                f"{resource.name}: {what} {text!r} does not belong to the {environment} "
                f"stack; every per-environment name must carry '{environment}' and no other "
                "environment (build it with infra/core/names.py)"
            )
