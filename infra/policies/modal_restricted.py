"""Policy `modal-prod-environment-restricted`: the prod Modal environment is restricted."""

from __future__ import annotations

from collections.abc import Iterator

from infra.policies.model import (
    MODAL_ENVIRONMENT,
    PROD,
    PolicyContext,
    Resource,
    known,
    modal_kind,
    words,
)


def check_modal_prod_restricted(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """In a restricted Modal environment only granted users reach its secrets and apps."""
    if modal_kind(resource) != MODAL_ENVIRONMENT:
        return
    name = resource.props.get("environment_name")
    is_prod = ctx.environment == PROD or (isinstance(name, str) and PROD in words(name))
    restricted = resource.props.get("restricted")
    if is_prod and known(restricted) and restricted is not True:
        yield (
            f"Modal environment '{name}' is not restricted, so every workspace member can read "
            "its secrets and redeploy its app: set restricted=True and grant roles explicitly "
            "(rentagpu:modalServiceUserRoles)"
        )
