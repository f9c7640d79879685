"""Policy `runtime-cannot-escalate`: the GPU app's principal is bounded and never reaches IAM or
STS."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

from infra.core import names
from infra.core import resource_types as types
from infra.policies.documents import allow_statements, statement_label
from infra.policies.model import (
    PolicyContext,
    Resource,
    as_list,
    as_text,
    known,
)

# The suffix names.py gives the runtime role and user, whatever the environment.
_RUNTIME_SUFFIX = names.role_name("x", "runtime").removeprefix(names.prefix("x"))
_BOUNDARY_SUFFIX = names.runtime_boundary_name("x").removeprefix(names.prefix("x"))
_FORBIDDEN_RUNTIME_SERVICES = ("iam", "sts")


def _last_segment(value: Any) -> str:
    text = as_text(value) or ""
    return text.rsplit("/", 1)[-1]  # a role or user given by ARN ends with its name


def _is_runtime_principal(value: Any) -> bool:
    return _last_segment(value).endswith(_RUNTIME_SUFFIX)


def _runtime_scope(resource: Resource) -> str | None:
    """A description if this resource shapes what the runtime principal may do, else None."""
    props = resource.props
    if resource.type == types.AWS_ROLE_POLICY and _is_runtime_principal(props.get("role")):
        return f"runtime role '{_last_segment(props.get('role'))}'"
    if resource.type == types.AWS_USER_POLICY and _is_runtime_principal(props.get("user")):
        return f"runtime user '{_last_segment(props.get('user'))}'"
    if resource.type == types.AWS_POLICY and (as_text(props.get("name")) or "").endswith(
        _BOUNDARY_SUFFIX
    ):
        return f"runtime permissions boundary '{props.get('name')}'"
    if resource.type in (types.AWS_ROLE, types.AWS_USER) and _is_runtime_principal(
        props.get("name")
    ):
        kind = "role" if resource.type == types.AWS_ROLE else "user"
        return f"runtime {kind} '{props.get('name')}'"
    if resource.type == types.AWS_ROLE_POLICY_ATTACHMENT and _is_runtime_principal(
        props.get("role")
    ):
        return f"runtime role '{_last_segment(props.get('role'))}'"
    if resource.type == types.AWS_USER_POLICY_ATTACHMENT and _is_runtime_principal(
        props.get("user")
    ):
        return f"runtime user '{_last_segment(props.get('user'))}'"
    return None


def _touches_forbidden_service(action: str) -> bool:
    service = action.split(":", 1)[0].lower() if ":" in action else action.lower()
    return any(fnmatch.fnmatchcase(s, service) for s in _FORBIDDEN_RUNTIME_SERVICES)


def check_runtime_cannot_escalate(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """The GPU app's principal gets S3 object access and nothing that reaches IAM or STS.

    A job runs user-supplied payloads; if its credentials could pass a role, assume one or edit
    IAM, one bad payload would own the account.
    """
    scope = _runtime_scope(resource)
    if scope is None:
        return
    props = resource.props
    if resource.type in (types.AWS_ROLE, types.AWS_USER):
        boundary = props.get("permissionsBoundary")
        if known(boundary) and not boundary:
            yield (
                f"{scope} has no permissions boundary: set permissions_boundary to the runtime "
                "boundary policy so no later policy edit can lift it"
            )
    if resource.type == types.AWS_ROLE and as_list(props.get("managedPolicyArns")):
        yield f"{scope} has managed policies attached: it gets exactly its inline policy, no more"
    if resource.type in (types.AWS_ROLE_POLICY_ATTACHMENT, types.AWS_USER_POLICY_ATTACHMENT):
        yield (
            f"{resource.name} attaches {props.get('policyArn')} to the {scope}: it gets "
            "exactly its inline policy, no more"
        )
    for document, index, statement in allow_statements(resource):
        label = statement_label(document, index, statement)
        if "NotAction" in statement:
            yield f"{label} of the {scope} uses NotAction, which includes IAM and STS"
        actions = [a for a in as_list(statement.get("Action")) if isinstance(a, str)]
        forbidden = sorted(a for a in actions if _touches_forbidden_service(a))
        if forbidden:
            yield (
                f"{label} lets the {scope} call {', '.join(forbidden)}: the GPU app must never "
                "touch IAM or STS (no iam:PassRole, no sts:AssumeRole); grant only the S3 "
                "calls it makes (infra/stages/aws/iam.py runtime_policy)"
            )
