"""Policy `iam-no-wildcards`: no Allow grants `*` or `service:*` actions, `*` resources or `*`
principals."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from infra.core import resource_types as types
from infra.policies.documents import (
    is_allow,
    permission_documents,
    principal_is_anyone,
    statement_label,
)
from infra.policies.model import (
    PolicyContext,
    Resource,
    as_list,
)

# Read-only actions that AWS cannot scope to a resource and so may use `"Resource": "*"`.
# Empty on purpose: nothing this project runs needs one (the deploy role's GetCallerIdentity needs
# no permission at all). Add an entry only as `"service:Action": "why, and which role needs it"`,
# after checking that AWS really offers no resource type for it. Entries are honoured only for
# Get/List/Describe actions, so a write action added here by mistake still fails the check.
RESOURCE_WILDCARD_EXCEPTIONS: Mapping[str, str] = MappingProxyType({})
_READ_ONLY_VERBS = ("Get", "List", "Describe")
AWS_MANAGED_POLICY = re.compile(r"^arn:[a-z-]+:iam::aws:policy/")


def _excepted(action: str) -> bool:
    verb = action.split(":", 1)[-1]
    return action in RESOURCE_WILDCARD_EXCEPTIONS and verb.startswith(_READ_ONLY_VERBS)


def _managed_policy_arns(resource: Resource) -> list[Any]:
    if resource.type == types.AWS_ROLE:
        return as_list(resource.props.get("managedPolicyArns"))
    if resource.type in (types.AWS_ROLE_POLICY_ATTACHMENT, types.AWS_USER_POLICY_ATTACHMENT):
        return as_list(resource.props.get("policyArn"))
    return []


def check_no_wildcards(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """No Allow statement grants `*` / `service:*` actions, `*` resources or `*` principals."""
    for arn in _managed_policy_arns(resource):
        if isinstance(arn, str) and AWS_MANAGED_POLICY.match(arn):
            yield (
                f"{resource.name} attaches the AWS-managed policy {arn}, whose grants this "
                "pack cannot see and which are broad by design: write a scoped policy in "
                "infra/stages/aws/iam.py instead"
            )
    for document, problem in permission_documents(resource):
        if problem:
            yield f"{resource.name}: {problem}"
        if document is None:
            continue
        for index, statement in enumerate(document.statements):
            if not is_allow(statement):
                continue  # a Deny only takes access away, however broad it is
            label = statement_label(document, index, statement)
            for key in ("NotAction", "NotResource", "NotPrincipal"):
                if key in statement:
                    yield (
                        f"{label} allows with {key}, which grants everything not listed: "
                        f"list what is allowed with {key.removeprefix('Not')} instead"
                    )
            actions = [a for a in as_list(statement.get("Action")) if isinstance(a, str)]
            broad = sorted(a for a in actions if a == "*" or a.endswith(":*"))
            if broad:
                yield (
                    f"{label} allows {', '.join(broad)}: name the exact actions the caller makes"
                )
            resources = as_list(statement.get("Resource"))
            if "*" in resources and not (actions and all(_excepted(a) for a in actions)):
                yield (
                    f"{label} allows {', '.join(sorted(actions)) or 'its actions'} on every "
                    "resource ('*'): scope Resource to this stack's ARNs (infra/core/names.py), or, for a "
                    "read-only action AWS cannot scope, add it to RESOURCE_WILDCARD_EXCEPTIONS "
                    "with the reason"
                )
            if principal_is_anyone(statement.get("Principal")):
                yield f"{label} allows anyone ('*' principal): name the principals, or make it a Deny"
