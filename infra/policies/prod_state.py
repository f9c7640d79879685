"""Policy `prod-state-holds-no-credential`: prod's config and state hold nothing that deploys or
writes, because prod's read credentials (drift, audits, previews) decrypt them without any
reviewer's approval (README: "Two planes of authority")."""

from __future__ import annotations

from collections.abc import Iterator

from infra.core import resource_types as types
from infra.policies.model import MODAL_CI_TOKEN, PROD, PolicyContext, Resource, modal_kind


def check_prod_state_holds_no_credential(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    if ctx.environment != PROD:
        return
    if modal_kind(resource) == MODAL_CI_TOKEN and resource.props.get("token_secret") is not None:
        yield (
            "prod's CI deploy token comes from stack config (rentagpu:modalTokenId / "
            "modalTokenSecret), so prod's config and state hold it, and every prod read "
            "credential (drift, audits, previews) can decrypt it without a reviewer: remove both "
            "keys from prod's config and let `pulumi up` mint the token"
        )
    if resource.type == types.AWS_ACCESS_KEY:
        yield (
            "prod's runtime access key would sit in prod's state and in its Modal secret, where "
            "every prod read credential can decrypt it without a reviewer: prod uses "
            "rentagpu:awsAuth oidc (the runtime role has no long-lived key)"
        )
