"""The audit's AWS part: when each of the stack's roles was last used, and, in access-key mode, the
runtime key's age and last use.

Calls, all reads the stack's read-only CI roles may make (infra/stages/aws/iam.py): `iam:GetRole`
(its `RoleLastUsed`: date and region, tracked by AWS for about 400 days), `iam:ListAccessKeys` and
`iam:GetAccessKeyLastUsed` on the runtime user. Credentials come from the default chain (in CI,
the drift role through OIDC), the endpoint from AWS_ENDPOINT_URL (moto in tests), through the
runbook's `AwsAccess`. Key ids are shown masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.core import names
from infra.core.secrets import mask_id
from infra.tools.audit.findings import (
    Activity,
    AuditScope,
    Finding,
    NotChecked,
    Severity,
    SourceResult,
    ago,
    day,
    unused_reason,
)
from infra.tools.runbook.aws_keys import AwsAccess
from modal_app import contract

SYSTEM = "aws"


class _Refused(Exception):
    """AWS refused or could not be reached; the text names the call and the code only."""


def _call(client: Any, operation: str, **kwargs: Any) -> dict[str, Any] | None:
    """One IAM read; None when the entity does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "?")
        if code == "NoSuchEntity":
            return None
        raise _Refused(f"AWS refused iam:{_action(operation)} ({code})") from None
    except NoCredentialsError:
        raise _Refused("no AWS credentials were found (environment, profile or role)") from None
    except BotoCoreError as error:
        raise _Refused(f"could not reach AWS IAM ({type(error).__name__})") from None


def _action(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def stack_roles(scope: AuditScope) -> list[str]:
    """The purposes of the stack's roles: its CI roles, and the runtime role in OIDC mode."""
    purposes = list(names.ci_role_contexts(scope.environment))
    if scope.config.aws.auth_mode == contract.OIDC:
        purposes.append("runtime")
    return purposes


def aws_source(scope: AuditScope, environ: Mapping[str, str]) -> SourceResult:
    result = SourceResult()
    iam = AwsAccess(scope.config.aws.region, environ).client("iam")
    checks = [("roles", _roles)]
    if scope.config.aws.auth_mode == contract.ACCESS_KEY:
        checks.append(("the runtime user's access keys", _keys))
    for what, check in checks:
        try:
            result.extend(check(iam, scope))
        except _Refused as error:
            result.not_checked.append(
                NotChecked(SYSTEM, what, f"{error}; run with the stack's drift role")
            )
    return result


def _roles(iam: Any, scope: AuditScope) -> SourceResult:
    result = SourceResult()
    stack = scope.stack
    for purpose in stack_roles(scope):
        name = names.role_name(scope.environment, purpose)
        answer = _call(iam, "get_role", RoleName=name)
        if answer is None:
            result.findings.append(
                Finding(
                    SYSTEM,
                    "aws-principal-missing",
                    Severity.MEDIUM,
                    f"role `{name}`",
                    "does not exist: the stack was never brought up, or it was deleted by hand",
                    f"pulumi refresh --stack {stack} --preview-only; then pulumi up --stack {stack}",
                )
            )
            continue
        role = answer["Role"]
        used = (role.get("RoleLastUsed") or {}).get("LastUsedDate")
        region = (role.get("RoleLastUsed") or {}).get("Region") or "?"
        unused = unused_reason(scope, used, role.get("CreateDate"))
        if unused:
            result.findings.append(
                Finding(
                    SYSTEM,
                    "aws-role-unused",
                    Severity.LOW,
                    f"role `{name}`",
                    f"{unused}; an unused role is standing access nobody needs",
                    f"aws iam get-role --role-name {name} --query Role.RoleLastUsed",
                )
            )
        seen = f"last used {day(used)} in {region}" if used else "never used"
        result.activity.append(Activity(SYSTEM, f"role `{name}`: {seen}"))
    return result


def _keys(iam: Any, scope: AuditScope) -> SourceResult:
    result = SourceResult()
    user = names.runtime_user_name(scope.environment)
    listed = _call(iam, "list_access_keys", UserName=user)
    if listed is None:
        result.findings.append(
            Finding(
                SYSTEM,
                "aws-principal-missing",
                Severity.MEDIUM,
                f"user `{user}`",
                "does not exist although awsAuth is access-key: the app has no key to use",
                f"pulumi up --stack {scope.stack}",
            )
        )
        return result
    keys = listed.get("AccessKeyMetadata", [])
    rotate = f"python -m infra rotate aws-key --stack {scope.stack}"
    if len(keys) > 1:
        result.findings.append(
            Finding(
                SYSTEM,
                "aws-key-extra",
                Severity.MEDIUM,
                f"user `{user}`",
                f"holds {len(keys)} access keys ("
                + ", ".join(mask_id(k["AccessKeyId"]) for k in keys)
                + "): a rotation did not finish, or a key was made by hand",
                f"{rotate} --resume",
            )
        )
    max_age = scope.config.aws.access_key_max_age_days
    for key in keys:
        masked = mask_id(key["AccessKeyId"])
        created = key.get("CreateDate")
        used_answer = _call(iam, "get_access_key_last_used", AccessKeyId=key["AccessKeyId"])
        used = ((used_answer or {}).get("AccessKeyLastUsed") or {}).get("LastUsedDate")
        subject = f"access key {masked} of `{user}`"
        if created is not None and scope.age_days(created) > max_age:
            result.findings.append(
                Finding(
                    SYSTEM,
                    "aws-key-too-old",
                    Severity.MEDIUM,
                    subject,
                    f"created {ago(scope.age_days(created))}; accessKeyMaxAgeDays is {max_age}",
                    rotate,
                )
            )
        unused = unused_reason(scope, used, created)
        if unused:
            result.findings.append(
                Finding(SYSTEM, "aws-key-unused", Severity.LOW, subject, unused, rotate)
            )
        seen = f"last used {day(used)}" if used else "never used"
        made = f"created {day(created)}" if created else "creation date unknown"
        status = key.get("Status", "?")
        result.activity.append(Activity(SYSTEM, f"{subject}: {status}, {made}, {seen}"))
    return result
