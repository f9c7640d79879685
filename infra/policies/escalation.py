"""Policy `iam-no-privilege-escalation`: no Allow grants an action that raises a principal's own
privileges, except the one grant the design needs, on the exact ARN it needs it for.

CI's deploy role rewrites the runtime principal's inline policy (`iam:PutRolePolicy` on the stack's
runtime role, `iam:PutUserPolicy` on its runtime user in access-key mode; the runtime boundary caps
what that policy can give). Nothing the stacks render may grant any other escalation action, or
those two on any other ARN.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from infra.core import names
from infra.policies.documents import allow_statements, statement_label
from infra.policies.model import PolicyContext, Resource, as_list

# The single home of "which actions escalate privilege". Sources: Rhino Security Labs, "AWS IAM
# Privilege Escalation - Methods and Mitigation" (Spencer Gietzen; rhinosecuritylabs.com/aws/
# aws-privilege-escalation-methods-mitigation/), in Bishop Fox's five categories as Salesforce's
# cloudsplaining lists them (docs/glossary/privilege-escalation.md); AWS IAM User Guide,
# "Permissions boundaries for IAM entities" (who may change a boundary lifts it) and "Grant a user
# permissions to pass a role to an AWS service" (iam:PassRole); Amazon S3 User Guide, bucket
# policies and ACLs (each grants the bucket to principals of the writer's choosing).
ESCALATION_ACTIONS: Mapping[str, str] = MappingProxyType(
    {
        # Permissions on policies: write, attach or swap in any permission.
        "iam:PutRolePolicy": "writes a role's inline policy",
        "iam:PutUserPolicy": "writes a user's inline policy",
        "iam:PutGroupPolicy": "writes a group's inline policy",
        "iam:AttachRolePolicy": "attaches any managed policy to a role",
        "iam:AttachUserPolicy": "attaches any managed policy to a user",
        "iam:AttachGroupPolicy": "attaches any managed policy to a group",
        "iam:CreatePolicyVersion": "rewrites a managed policy (--set-as-default needs nothing more)",
        "iam:SetDefaultPolicyVersion": "brings back an older version of a managed policy",
        # Permissions boundaries: replace or remove the ceiling.
        "iam:PutRolePermissionsBoundary": "replaces a role's permissions boundary",
        "iam:DeleteRolePermissionsBoundary": "removes a role's permissions boundary",
        "iam:PutUserPermissionsBoundary": "replaces a user's permissions boundary",
        "iam:DeleteUserPermissionsBoundary": "removes a user's permissions boundary",
        # IAM permissions on other users: become them.
        "iam:CreateAccessKey": "mints another user's access key",
        "iam:CreateLoginProfile": "gives another user a console password",
        "iam:UpdateLoginProfile": "resets another user's console password",
        "iam:AddUserToGroup": "joins a group and gets its policies",
        # Roles: re-trust, assume or hand one to code the caller controls.
        "iam:UpdateAssumeRolePolicy": "re-trusts a role to the caller",
        "iam:PassRole": "hands a role to a service (EC2, Lambda, Glue, CloudFormation) the caller runs",
        "sts:AssumeRole": "takes on another role's permissions",
        "sts:AssumeRoleWithWebIdentity": "takes on another role's permissions",
        "sts:AssumeRoleWithSAML": "takes on another role's permissions",
        "sts:AssumeRoot": "takes on a member account's root permissions",
        # Code that already runs with a role.
        "lambda:UpdateFunctionCode": "runs the caller's code as a function's role",
        "glue:UpdateDevEndpoint": "runs the caller's key on an endpoint with a role",
        # Resource policies: hand the bucket to principals of the writer's choosing.
        "s3:PutBucketPolicy": "rewrites who may use the bucket",
        "s3:DeleteBucketPolicy": "removes the bucket policy's denies (TLS only)",
        "s3:PutBucketAcl": "grants the bucket to other accounts or everyone",
        "s3:PutObjectAcl": "grants objects to other accounts or everyone",
    }
)

# What the design allows, and on which of the stack's ARNs (infra/stages/aws/iam.py deploy_policy).
_DESIGN_ALLOWS: Mapping[str, Callable[[str], tuple[str, str]]] = MappingProxyType(
    {
        "iam:PutRolePolicy": lambda env: ("role", names.role_name(env, "runtime")),
        "iam:PutUserPolicy": lambda env: ("user", names.runtime_user_name(env)),
    }
)
_ACCOUNT_ID = re.compile(r"\d{12}")


def action_pattern(pattern: str) -> re.Pattern[str]:
    """An IAM action pattern as a regex: `*` any run, `?` one character, case-insensitive (IAM
    matches action names without regard to case)."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE)


def covered(patterns: Sequence[str]) -> list[str]:
    """The escalation actions that any of `patterns` matches."""
    compiled = [action_pattern(p) for p in patterns]
    return [a for a in ESCALATION_ACTIONS if any(c.fullmatch(a) for c in compiled)]


def allowed_arn(action: str, environment: str, account: str) -> str | None:
    """The one ARN the design lets a policy grant `action` on, or None."""
    target = _DESIGN_ALLOWS.get(action)
    if target is None:
        return None
    kind, name = target(environment)
    return names.iam_arn(account, environment, kind, name)


def _allowed(action: str, resource: Any, environment: str | None) -> bool:
    if environment is None or not isinstance(resource, str):
        return False
    parts = resource.split(":", 5)
    if len(parts) != 6 or not _ACCOUNT_ID.fullmatch(parts[4]):
        return False  # the account must be a literal: the stack's own ARN names one account
    return resource == allowed_arn(action, environment, parts[4])


def _grants(statement: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(how the statement says it, the escalation actions that covers) for each grant."""
    if "NotAction" in statement:
        excluded = [a for a in as_list(statement["NotAction"]) if isinstance(a, str)]
        spared = covered(excluded)
        granted = [a for a in ESCALATION_ACTIONS if a not in spared]
        return [(f"NotAction {excluded}", granted)] if granted else []
    grants = []
    for pattern in as_list(statement.get("Action")):
        if isinstance(pattern, str) and (actions := covered([pattern])):
            grants.append((pattern, actions))
    return grants


def _scope(statement: Mapping[str, Any]) -> tuple[list[Any], str]:
    """(the resources a statement names, how to say them); NotResource names everything else."""
    if "NotResource" in statement:
        return [], f"every resource but {as_list(statement['NotResource'])}"
    resources = as_list(statement.get("Resource"))
    return resources, ", ".join(str(r) for r in resources) or "no Resource (every resource)"


def _design_note(environment: str | None) -> str:
    if environment is None:
        return (
            "the stack's environment is unknown (rentagpu:environment), so no ARN is allowed "
            "for them"
        )
    allowed = " and ".join(
        f"{action} on {allowed_arn(action, environment, '<account>')}" for action in _DESIGN_ALLOWS
    )
    return f"the design allows only {allowed}"


def check_no_privilege_escalation(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """No Allow grants an escalation action on anything but the exact ARN the design allows.

    Action wildcards count for every escalation action they match (`iam:Put*`, `sts:Assume*`,
    `*`); NotAction grants every escalation action it does not exclude; NotResource and a missing
    Resource reach more than one ARN, so they never match the allowed one.
    """
    for document, index, statement in allow_statements(resource):
        resources, where = _scope(statement)
        for said, actions in _grants(statement):
            bad = [
                action
                for action in actions
                if not resources or not all(_allowed(action, r, ctx.environment) for r in resources)
            ]
            if not bad:
                continue
            exact = len(bad) == 1 and bad[0].lower() == said.lower()
            how = said if exact else f"{said}, which grants {', '.join(bad)}"
            yield (
                f"{statement_label(document, index, statement)} allows {how} on {where}: "
                "privilege escalation (ESCALATION_ACTIONS in infra/policies/escalation.py); "
                f"{_design_note(ctx.environment)}; grant no other escalation action, and "
                "those on no other ARN (infra/stages/aws/iam.py)"
            )
