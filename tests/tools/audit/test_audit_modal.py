"""The audit's Modal part against the fake Modal server (modal 1.6.4's protocol, real SDK client):
the audit log, service users against the config, members' unused tokens."""

from __future__ import annotations

import datetime
import time

import pytest
from grpclib import Status

from infra.tools.audit.findings import AuditScope, Severity
from infra.tools.audit.modal import modal_source
from infra.tools.audit.modal_log import SENSITIVE_ACTIONS, Known
from tests.fakes.modal_fixtures import FakeModal
from tests.fakes.modal_rpc_audit import PAGE_SIZE, FakeAuditEvent, add_audit_event
from tests.stacks import stack_config
from tests.tools.audit.conftest import ci_user
from tests.tools.audit.support import DAY, kinds

CI_SERVICE_USER = ci_user("prod")  # CI's minted deploy service user of prod


def _scope(stack: str, since: int = 7, **config: object) -> AuditScope:
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    return AuditScope(stack_config(stack, **config), now, since, 90)


def _event(
    modal: FakeModal,
    action: str,
    env: str,
    *,
    actor: str = "alice",
    days: float = 1.0,
    actor_type: str = "user",
    **extra: object,
) -> FakeAuditEvent:
    """An entry of Modal's audit log, `days` ago."""
    event = FakeAuditEvent(
        at=time.time() - days * DAY,
        action=action,
        actor_type=actor_type,
        actor_name=actor,
        environment_name=env,
        **extra,
    )
    return add_audit_event(modal.state, event)


def _audit(modal: FakeModal, scope: AuditScope, token: tuple[str, str] | None = None):
    return modal_source(scope, modal.environ(token))


def test_audit_modal_a_clean_stack_has_no_findings_and_only_reads(workspace: FakeModal) -> None:
    _event(workspace, "app.deploy", "prod", actor=CI_SERVICE_USER, actor_type="service_user")
    _event(workspace, "secret.update", "prod", actor=CI_SERVICE_USER, actor_type="service_user")
    _event(workspace, "secret.update", "main", actor="alice")  # another environment
    result = _audit(workspace, _scope("prod"))
    assert result.findings == [] and result.not_checked == []
    assert [a.text for a in result.activity] == [
        f"by CI ('{CI_SERVICE_USER}') in `prod`: `app.deploy` ×1, `secret.update` ×1",
        "spend this cycle $0.00 of $500.00",
    ]
    assert workspace.mutating_calls() == [] and workspace.unimplemented_calls() == []


@pytest.mark.parametrize(
    ("stack", "cap", "usage", "kind", "severity"),
    [
        ("prod", None, 0.0, "no spend cap", Severity.HIGH),  # prod must have one
        ("dev", None, 0.0, "no spend cap", Severity.LOW),
        ("prod", 500.0, 420.0, "84% of its $500.00 cap", Severity.MEDIUM),
        ("prod", 500.0, 500.0, "has reached its spend limit", Severity.HIGH),
    ],
)
def test_audit_modal_the_spend_cap_missing_mostly_spent_or_reached(
    workspace: FakeModal, stack, cap, usage, kind, severity
) -> None:
    """EnvironmentGetBudget (modal_proto api_pb2.pyi EnvironmentGetBudgetResponse), judged by
    infra.modal_hook.budget.budget_finding."""
    env = workspace.state.environments[stack]
    env.budget_dollars = cap
    env.usage_dollars = usage
    (finding,) = _audit(workspace, _scope(stack)).findings
    assert (finding.kind, finding.severity) == ("modal-budget", severity)
    assert kind in finding.detail
    assert f"monthlyBudgetDollars DOLLARS --stack {stack}" in finding.command


@pytest.mark.parametrize(("stack", "severity"), [("prod", Severity.HIGH), ("dev", Severity.MEDIUM)])
def test_audit_modal_a_person_changing_the_runtime_secret_is_a_finding(
    workspace: FakeModal, stack: str, severity: Severity
) -> None:
    _event(workspace, "secret.update", stack, targets=(("secret", "st-runtime"),), source="web")
    _event(workspace, "secret.update", stack, days=2)
    (finding,) = _audit(workspace, _scope(stack)).findings
    assert finding.kind == "modal-change-by-other-actor" and finding.severity is severity
    assert finding.subject == f"`secret.update` by user 'alice' in `{stack}`"
    assert "2 times" in finding.detail and "secret st-runtime" in finding.detail
    assert f"only CI ('{ci_user(stack)}')" in finding.detail
    assert finding.command == f"pulumi refresh --stack {stack} --preview-only --expect-no-changes"


def test_audit_modal_a_person_deploying_is_high_in_prod_and_activity_in_dev(
    workspace: FakeModal,
) -> None:
    _event(workspace, "app.deploy", "prod")
    _event(workspace, "app.deploy", "dev")
    (finding,) = _audit(workspace, _scope("prod")).findings
    assert (finding.kind, finding.severity) == ("modal-change-by-other-actor", Severity.HIGH)
    assert finding.command == "modal app history rentagpu-executor -e prod"
    dev = _audit(workspace, _scope("dev"))
    assert dev.findings == []
    assert any("`app.deploy` by user 'alice'" in a.text for a in dev.activity)


def test_audit_modal_unknown_actions_are_reported_not_assumed_harmless(
    workspace: FakeModal,
) -> None:
    _event(workspace, "volume.delete", "prod", actor="bob")
    _event(workspace, "secret.rotate", "prod", actor="bob")  # unknown verb, sensitive noun
    _event(workspace, "volume.delete", "dev", actor="bob")
    prod = {f.subject: f for f in _audit(workspace, _scope("prod")).findings}
    unknown = prod["`volume.delete` by user 'bob' in `prod`"]
    assert (unknown.kind, unknown.severity) == ("modal-unknown-action", Severity.MEDIUM)
    assert "`action:volume.delete`" in unknown.command
    noun = prod["`secret.rotate` by user 'bob' in `prod`"]
    assert noun.kind == "modal-change-by-other-actor" and "not a known action name" in noun.detail
    (dev,) = _audit(workspace, _scope("dev")).findings
    assert (dev.kind, dev.severity) == ("modal-unknown-action", Severity.LOW)


def test_audit_modal_the_sensitive_action_list_says_what_is_confirmed() -> None:
    confirmed = {a for a, known in SENSITIVE_ACTIONS.items() if known is Known.CONFIRMED}
    assert confirmed == {"secret.create", "app.deploy"}  # Modal's audit-log guide names these


def test_audit_modal_entries_are_matched_by_environment_id_when_the_name_is_unresolved(
    workspace: FakeModal,
) -> None:
    prod_id = workspace.state.environments["prod"].id
    _event(workspace, "secret.delete", "", environment_id=prod_id, actor="carol")
    assert kinds(_audit(workspace, _scope("prod")).findings) == ["modal-change-by-other-actor"]


def test_audit_modal_reads_only_the_window_and_pages_through_a_long_log(
    workspace: FakeModal,
) -> None:
    for i in range(2 * PAGE_SIZE + 20):
        _event(workspace, "secret.update", "prod", days=1 + i / 1000)
    _event(workspace, "app.deploy", "prod", days=30)  # outside the 7-day window
    result = _audit(workspace, _scope("prod"))
    (finding,) = result.findings
    assert f"{2 * PAGE_SIZE + 20} times" in finding.detail
    lists = [c for c in workspace.calls if c.rpc == "AuditLogList"]
    assert len(lists) == 3
    assert lists[1].request.newest_cursor.id  # the next page starts where the last ended
    wider = _audit(workspace, _scope("prod", since=60))
    assert kinds(wider.findings) == ["modal-change-by-other-actor"] * 2


def test_audit_modal_a_change_made_with_the_real_modal_cli_is_found(workspace: FakeModal) -> None:
    # The owner overwrites prod's runtime secret by hand, as the guide once told people to.
    workspace.cli("secret", "create", "--force", "-e", "prod", "rentagpu-runtime", "A=1")
    (finding,) = _audit(workspace, _scope("prod")).findings
    assert finding.subject == "`secret.update` by user 'owner' in `prod`"


def _user(modal: FakeModal, name: str):
    return modal.state.principal_named(name, "service_user")


def test_audit_modal_a_configured_service_user_that_does_not_exist(workspace: FakeModal) -> None:
    scope = _scope("prod", modalServiceUserRoles={"rentagpu-read": "viewer"})
    (finding,) = _audit(workspace, scope).findings
    assert (finding.kind, finding.severity) == ("modal-service-user-missing", Severity.HIGH)
    assert finding.subject == "service user 'rentagpu-read'"


def test_audit_modal_a_service_user_role_other_than_configured(workspace: FakeModal) -> None:
    workspace.state.set_role("prod", CI_SERVICE_USER, "viewer")
    (finding,) = _audit(workspace, _scope("prod")).findings
    assert (finding.kind, finding.severity) == ("modal-service-user-role", Severity.HIGH)
    assert "holds role viewer in `prod`; the config says contributor" in finding.detail
    assert finding.command == "pulumi up --stack prod"


@pytest.mark.parametrize(
    ("stack", "role", "severity"),
    [
        ("prod", "contributor", Severity.HIGH),
        ("prod", "viewer", Severity.MEDIUM),
        ("dev", "contributor", Severity.MEDIUM),
    ],
)
def test_audit_modal_an_unconfigured_service_user_with_a_role(
    workspace: FakeModal, stack: str, role: str, severity: Severity
) -> None:
    workspace.state.add_service_user("leftover-ci")
    workspace.state.set_role(stack, "leftover-ci", role)
    (finding,) = _audit(workspace, _scope(stack)).findings
    assert (finding.kind, finding.severity) == ("modal-service-user-unexpected", severity)
    assert finding.command.startswith(f"modal environment roles update {stack} leftover-ci")


def test_audit_modal_an_unscoped_service_user(workspace: FakeModal) -> None:
    _user(workspace, CI_SERVICE_USER).scoped = False  # what modal 1.6.4's SDK creates
    (finding,) = _audit(workspace, _scope("prod")).findings
    assert (finding.kind, finding.severity) == ("modal-service-user-unscoped", Severity.MEDIUM)


def _ci_times(modal: FakeModal):
    (token_id,) = modal.server.token_ids_of(_user(modal, CI_SERVICE_USER).id)
    return modal.state.token_times[token_id]


@pytest.mark.parametrize(
    ("expires_in_days", "kind", "severity"),
    [
        (-1, "modal-service-user-expired", Severity.HIGH),
        (5, "modal-service-user-expiring", Severity.MEDIUM),
    ],
)
def test_audit_modal_service_user_expiry(
    workspace: FakeModal, expires_in_days: int, kind: str, severity: Severity
) -> None:
    _ci_times(workspace).expires_at = time.time() + expires_in_days * DAY
    (finding,) = _audit(workspace, _scope("prod")).findings
    assert (finding.kind, finding.severity) == (kind, severity)
    assert finding.command == "python -m infra rotate ci-tokens --stack prod"  # minted


def test_audit_modal_service_user_older_than_the_rotation_period(workspace: FakeModal) -> None:
    _ci_times(workspace).created_at = time.time() - 40 * DAY
    assert _audit(workspace, _scope("prod")).findings == []  # 40 < 90 days
    (finding,) = _audit(workspace, _scope("prod", tokenRotationDays=30)).findings
    assert (finding.kind, finding.severity) == ("modal-service-user-due", Severity.MEDIUM)
    assert "created 40 days ago" in finding.detail and "30 days" in finding.detail


def test_audit_modal_unused_service_user_and_member_token(workspace: FakeModal) -> None:
    times = _ci_times(workspace)
    times.last_used_at = time.time() - 100 * DAY
    owner_token = workspace.state.token_times[workspace.token_id]
    owner_token.created_at, owner_token.last_used_at = time.time() - 200 * DAY, 0.0
    result = _audit(workspace, _scope("prod", tokenRotationDays=365))
    assert kinds(result.findings) == ["modal-member-token-unused", "modal-service-user-unused"]
    member = next(f for f in result.findings if f.kind == "modal-member-token-unused")
    assert (
        member.severity is Severity.LOW and "never used since it was created 200" in member.detail
    )
    assert workspace.token_id not in member.subject + member.command  # masked
    assert member.subject.startswith(f"token {workspace.token_id[:3]}…{workspace.token_id[-4:]}")


def test_audit_modal_a_token_that_may_not_read_the_log_is_not_checked(workspace: FakeModal) -> None:
    ci = workspace.server.add_token(CI_SERVICE_USER, kind="service_user")
    result = _audit(workspace, _scope("prod"), token=ci)
    assert [n.what for n in result.not_checked] == ["the audit log", "service users"]
    assert "Only workspace managers can read the audit log" in result.not_checked[0].reason
    assert ci[1] not in str(result)


def test_audit_modal_an_unavailable_log_is_not_checked_and_the_rest_still_runs(
    workspace: FakeModal,
) -> None:
    workspace.inject("AuditLogList", Status.INTERNAL, times=None)
    workspace.state.set_role("prod", CI_SERVICE_USER, "viewer")
    result = _audit(workspace, _scope("prod"))
    assert [n.what for n in result.not_checked] == ["the audit log"]
    assert kinds(result.findings) == ["modal-service-user-role"]


def test_audit_modal_without_a_token_nothing_is_checked(workspace: FakeModal) -> None:
    result = modal_source(_scope("prod"), {"MODAL_SERVER_URL": workspace.url})
    (missing,) = result.not_checked
    assert "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are not set" in missing.reason
