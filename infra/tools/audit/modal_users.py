"""Modal service users against the stack's config, and members' tokens nobody uses.

From `ServiceUserList` (modal 1.6.4 `ServiceUser`, pyi 16506: created_at, last_used_at (0 = never),
optional expires_at, all epoch doubles; `scoped`; `environment_roles` with environment name and
role string) and `TokensList` (`TokensListResponse.Token`, pyi 17711: created_at, last_used_at,
expires_at, disabled). The SDK drops `scoped` (modal/types.py:475-508); what it means is not
documented: read here as "reaches only the environments it holds a role in", so an unscoped
service user is reported. Token ids are shown masked.
"""

from __future__ import annotations

from infra.core import names
from infra.core.config import expected_service_users
from infra.core.secrets import mask_id
from infra.tools.audit.findings import (
    AuditScope,
    Finding,
    Severity,
    SourceResult,
    ago,
    day,
    from_epoch,
    unused_reason,
)

SYSTEM = "modal"
EXPIRY_WARNING_DAYS = 14
_LIST_USERS = "modal workspace service-users list"


def _role_here(user, scope: AuditScope, environment_id: str) -> str | None:
    for entry in user.environment_roles:
        if entry.environment_name == scope.environment or (
            environment_id and entry.environment_id == environment_id
        ):
            return entry.role_str or None
    return None


def service_user_findings(scope: AuditScope, users, environment_id: str) -> SourceResult:
    result = SourceResult()
    configured = expected_service_users(scope.config)
    by_name = {user.name: user for user in users}
    stack, env = scope.stack, scope.environment
    for name, role in sorted(configured.items()):
        user = by_name.get(name)
        subject = f"service user '{name}'"
        if user is None:
            result.findings.append(
                Finding(
                    SYSTEM,
                    "modal-service-user-missing",
                    Severity.HIGH,
                    subject,
                    f"should hold {role} (modalServiceUserRoles, or CI's minted token) but is not "
                    "in the workspace: CI holding its token cannot work; `pulumi up` grants "
                    "configured roles and mints CI's tokens again",
                    _LIST_USERS,
                )
            )
            continue
        actual = _role_here(user, scope, environment_id)
        if actual != role:
            result.findings.append(
                Finding(
                    SYSTEM,
                    "modal-service-user-role",
                    Severity.HIGH,
                    subject,
                    f"holds role {actual or 'none'} in `{env}`; the config says {role}",
                    f"pulumi up --stack {stack}",
                )
            )
        result.extend(_lifetime(scope, user, subject, role))
    for user in users:
        if user.name in configured:
            continue
        actual = _role_here(user, scope, environment_id)
        if actual in (None, "no-access"):
            continue
        writes = actual == "contributor"
        severity = (
            (Severity.HIGH if writes else Severity.MEDIUM)
            if scope.config.is_prod
            else (Severity.MEDIUM if writes else Severity.LOW)
        )
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-service-user-unexpected",
                severity,
                f"service user '{user.name}'",
                f"holds role {actual} in `{env}` but is neither in modalServiceUserRoles nor one of "
                "CI's minted service users",
                f"modal environment roles update {env} {user.name} --role no-access "
                "--service-user  # or add it to modalServiceUserRoles",
            )
        )
    return result


def _rotation_command(scope: AuditScope, name: str, role: str) -> str:
    """What replaces the service user's token: CI's minted ones rotate with `ciTokenSerial`; a
    contributor next to a fallback deploy token is taken for it; any other was made by hand."""
    modal = scope.config.modal
    minted = {
        names.ci_service_user(scope.environment, purpose, modal.ci_token_serial)
        for purpose in names.CI_TOKEN_ROLES
    }
    if name in minted:
        return f"python -m infra rotate ci-tokens --stack {scope.stack}"
    if role == "contributor" and modal.token_id is not None:
        return (
            f"python -m infra rotate modal-token --stack {scope.stack} --create-service-user NAME"
        )
    return f"python -m infra incident --stack {scope.stack} --credential modal-service-user"


def _lifetime(scope: AuditScope, user, subject: str, role: str) -> SourceResult:
    result = SourceResult()
    rotate = _rotation_command(scope, user.name, role)
    created = from_epoch(user.created_at)
    expires = from_epoch(user.expires_at) if user.HasField("expires_at") else None
    if not user.scoped:
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-service-user-unscoped",
                Severity.MEDIUM,
                subject,
                "is not scoped: it may reach every environment a workspace member can, not only "
                f"`{scope.environment}` (modal 1.6.4 cannot create scoped service users; Modal's "
                "dashboard can)",
                _LIST_USERS,
            )
        )
    if expires is not None and expires <= scope.now:
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-service-user-expired",
                Severity.HIGH,
                subject,
                f"its token expired on {day(expires)}: CI using it fails",
                rotate,
            )
        )
    elif expires is not None and (expires - scope.now).days < EXPIRY_WARNING_DAYS:
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-service-user-expiring",
                Severity.MEDIUM,
                subject,
                f"its token expires on {day(expires)}, in under {EXPIRY_WARNING_DAYS} days",
                rotate,
            )
        )
    elif created is not None and scope.age_days(created) > scope.rotation_days:
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-service-user-due",
                Severity.MEDIUM,
                subject,
                f"created {ago(scope.age_days(created))}; the rotation period is "
                f"{scope.rotation_days} days (tokenRotationDays)",
                rotate,
            )
        )
    unused = unused_reason(scope, from_epoch(user.last_used_at), created)
    if unused:
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-service-user-unused",
                Severity.LOW,
                subject,
                f"{unused}; a credential nobody uses is only a risk",
                f"modal workspace service-users delete {user.name}  # after checking CI",
            )
        )
    return result


def member_token_findings(scope: AuditScope, tokens) -> SourceResult:
    result = SourceResult()
    for token in tokens:
        if token.disabled:
            continue
        unused = unused_reason(scope, from_epoch(token.last_used_at), from_epoch(token.created_at))
        if not unused:
            continue
        masked = mask_id(token.token_id)
        result.findings.append(
            Finding(
                SYSTEM,
                "modal-member-token-unused",
                Severity.LOW,
                f"token {masked} of member '{token.member_displayname or token.user_id}'",
                f"{unused}; disable it, or delete it if nobody needs it",
                f"modal workspace member-tokens disable {masked}  # the full id: "
                "modal workspace member-tokens list",
            )
        )
    return result
