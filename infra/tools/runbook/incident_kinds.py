"""Every kind `incident --credential` takes, the listing each prints, and how it is shown."""

from __future__ import annotations

from collections.abc import Callable

from infra.tools.runbook.incident_accounts import (
    aws_admin_listing,
    aws_key_listing,
    aws_role_listing,
    github_admin_listing,
    github_read_listing,
    job_token_listing,
    pulumi_token_listing,
    stack_secrets_listing,
)
from infra.tools.runbook.incident_places import (
    Listing,
    StackFacts,
    admin_modal_listing,
    ci_token_listing,
    service_user_listing,
)

KINDS: dict[str, Callable[[StackFacts], Listing]] = {
    "modal-deploy-token": lambda facts: ci_token_listing("deploy", facts),
    "modal-read-token": lambda facts: ci_token_listing("read", facts),
    "modal-service-user": service_user_listing,
    "modal-admin-token": admin_modal_listing,
    "aws-key": aws_key_listing,
    "aws-role": aws_role_listing,
    "aws-admin-credentials": aws_admin_listing,
    "pulumi-token": pulumi_token_listing,
    "stack-secrets": stack_secrets_listing,
    "github-read-token": github_read_listing,
    "github-admin-token": github_admin_listing,
    "job-token": job_token_listing,
}
CREDENTIALS = tuple(KINDS)
# What `--verify` asks the issuing system about (the rest is config and state, for every kind).
MODAL_KINDS = ("modal-deploy-token", "modal-read-token", "modal-service-user", "modal-admin-token")
GITHUB_KINDS = ("github-read-token", "github-admin-token")
# Kinds whose credential is one value (no id and secret pair).
SINGLE_VALUE = (*GITHUB_KINDS, "pulumi-token")


def render_listing(credential: str, facts: StackFacts, notes: list[str]) -> str:
    listing = KINDS[credential](facts)
    lines = [f"Incident: {credential} of stack '{facts.stack}'", "", "Where it lives:"]
    lines += [f"  - {p.system}: {p.where}" for p in listing.places] or ["  - nowhere"]
    lines += ["", "Revoke:"] + [f"  {line}" for line in listing.revoke]
    lines += ["", "Rotate:"] + [f"  {line}" for line in listing.rotate]
    if listing.no_verify:
        lines += ["", f"Verify: {listing.no_verify}"]
    lines += [f"note: {n}" for n in [*listing.notes, *notes]]
    return "\n".join(lines)
