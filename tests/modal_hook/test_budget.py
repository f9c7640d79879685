"""ModalBudgetProvider against the fake Modal server, through the real SDK's stubs.

The RPCs and their fields are modal 1.6.4's (modal_proto/api_pb2.pyi: EnvironmentSetBudgetRequest
`environment_id`, optional `cycle_budget_dollars`, `clear_budget`; EnvironmentGetBudgetResponse
optional `cycle_budget_dollars`, `effective_cycle_spend_limit`, `current_cycle_usage`,
`spend_limit_reached`); the SDK itself never calls them.
"""

from __future__ import annotations

import pytest

from infra.core.errors import Failure, ModalCallError
from infra.modal_hook.budget import BudgetStatus, ModalBudgetProvider, budget_finding
from tests.modal_hook.support import FAST, checked


@pytest.fixture
def budget_provider() -> ModalBudgetProvider:
    return ModalBudgetProvider(FAST)


def budget(environment: str = "prod", dollars: float = 500) -> dict:
    return {"environment_name": environment, "monthly_budget_dollars": dollars}


def live_cap(modal_env, environment: str = "prod") -> float | None:
    return modal_env.state.environments[environment].budget_dollars


def test_create_read_update_delete(modal_env, budget_provider) -> None:
    env = modal_env.state.add_environment("prod", restricted=True)
    provider = budget_provider

    created = provider.create(checked(provider, budget()))

    assert created.id == "prod"
    assert created.outs == {**budget(), "environment_id": env.id}
    assert live_cap(modal_env) == 500.0
    (sent,) = [c.request for c in modal_env.calls if c.rpc == "EnvironmentSetBudget"]
    assert sent.environment_id == env.id and sent.HasField("cycle_budget_dollars")
    assert sent.cycle_budget_dollars == 500.0 and not sent.clear_budget

    read = provider.read(created.id, created.outs)
    assert read.id == "prod" and read.outs == created.outs

    news = checked(provider, budget(dollars=750))
    assert provider.diff(created.id, read.outs, news).changes is True
    updated = provider.update(created.id, read.outs, news)
    assert live_cap(modal_env) == 750.0 and updated.outs["monthly_budget_dollars"] == 750

    provider.delete(created.id, updated.outs)
    assert live_cap(modal_env) is None
    assert "prod" in modal_env.state.environments  # the cap goes, the environment stays
    assert modal_env.unimplemented_calls() == []


def test_an_unchanged_cap_sends_no_mutating_rpc(modal_env, budget_provider) -> None:
    modal_env.state.add_environment("prod", restricted=True)
    created = budget_provider.create(checked(budget_provider, budget()))
    modal_env.clear_calls()

    refreshed = budget_provider.read(created.id, created.outs)
    diff = budget_provider.diff(created.id, refreshed.outs, checked(budget_provider, budget()))

    assert diff.changes is False
    assert modal_env.mutating_calls() == []
    assert modal_env.rpc_names() == ["EnvironmentList", "EnvironmentGetBudget"] * 2


def test_a_cap_removed_by_hand_is_drift_and_the_next_up_restores_it(modal_env, budget_provider):
    modal_env.state.add_environment("prod", restricted=True)
    provider = budget_provider
    created = provider.create(checked(provider, budget()))
    modal_env.state.environments["prod"].budget_dollars = None  # cleared in Modal by hand

    refreshed = provider.read(created.id, created.outs)
    assert refreshed.outs["monthly_budget_dollars"] is None  # what `pulumi refresh` shows

    # `pulumi up` without a refresh: the state still says 500, the diff asks Modal.
    diff = provider.diff(created.id, created.outs, checked(provider, budget()))
    assert diff.changes is True and diff.replaces == []
    provider.update(created.id, created.outs, checked(provider, budget()))
    assert live_cap(modal_env) == 500.0


def test_a_cap_changed_by_hand_is_drift_too(modal_env, budget_provider) -> None:
    modal_env.state.add_environment("prod", restricted=True)
    created = budget_provider.create(checked(budget_provider, budget()))
    modal_env.state.environments["prod"].budget_dollars = 5000.0

    assert budget_provider.read(created.id, created.outs).outs["monthly_budget_dollars"] == 5000.0
    diff = budget_provider.diff(created.id, created.outs, checked(budget_provider, budget()))
    assert diff.changes is True


def test_without_a_modal_token_the_diff_falls_back_to_the_state(
    modal_env, budget_provider, monkeypatch
) -> None:
    modal_env.state.add_environment("prod", restricted=True)
    created = budget_provider.create(checked(budget_provider, budget()))
    monkeypatch.delenv("MODAL_TOKEN_ID")  # e.g. a preview without Modal credentials

    news = checked(budget_provider, budget())
    assert budget_provider.diff(created.id, created.outs, news).changes is False
    assert budget_provider.diff(created.id, created.outs, budget(dollars=600)).changes is True


def test_a_deleted_environment_reports_the_budget_gone(modal_env, budget_provider) -> None:
    modal_env.state.add_environment("prod", restricted=True)
    created = budget_provider.create(checked(budget_provider, budget()))
    modal_env.state.delete_environment("prod")

    assert budget_provider.read(created.id, created.outs).id == ""
    budget_provider.delete(created.id, created.outs)  # nothing left to clear: not an error


def test_a_cap_for_a_missing_environment_fails_clearly(modal_env, budget_provider) -> None:
    with pytest.raises(ModalCallError) as caught:
        budget_provider.create(checked(budget_provider, budget("dev")))

    assert caught.value.failure is Failure.NOT_FOUND
    assert "environment 'dev' does not exist" in str(caught.value)
    assert modal_env.mutating_calls() == []


@pytest.mark.parametrize("dollars", [0, -5, 1_000_001, "500", True, None])
def test_a_bad_cap_is_refused_by_check_naming_the_property(budget_provider, dollars) -> None:
    result = budget_provider.check({}, budget(dollars=dollars))
    assert [(f.property, f.reason) for f in result.failures] == [
        ("monthly_budget_dollars", "must be a number of dollars, 1-1,000,000")
    ]


def test_renaming_the_environment_replaces_the_budget(budget_provider) -> None:
    olds = {**budget(), "environment_id": "en-x"}
    diff = budget_provider.diff("prod", olds, budget("prod2"))
    assert diff.replaces == ["environment_name"]


def status(cap: float | None, usage: float, reached: bool = False) -> BudgetStatus:
    return BudgetStatus("prod", cap, cap or 0.0, usage, reached)


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (status(500, 399.99), None),
        (status(500, 400), "80% of its $500.00 cap"),
        (status(500, 512, reached=True), "has reached its spend limit ($512.00 of $500.00)"),
        (status(None, 3), "has no spend cap"),
    ],
)
def test_budget_status_becomes_a_finding_at_80_percent(found, words) -> None:
    finding = budget_finding(found)
    if words is None:
        assert finding is None
    else:
        assert finding is not None and words in finding
        assert "Modal environment 'prod'" in finding


def test_the_live_status_comes_from_modal(modal_env) -> None:
    from infra.modal_hook.budget import budget_status

    env = modal_env.state.add_environment("prod", restricted=True)
    env.budget_dollars, env.usage_dollars = 100.0, 85.5

    found = budget_status("prod", FAST)

    assert found == BudgetStatus("prod", 100.0, 100.0, 85.5, False)
    assert budget_finding(found) is not None and "86%" in budget_finding(found)
    assert budget_status("nowhere", FAST) is None
