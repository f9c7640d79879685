"""The whole program as an in-process `pulumi up`: its own wiring of config and AWS outputs into
Modal, run for real against the fake Modal server (see tests/fakes/engine.py)."""

from __future__ import annotations

import pytest

from infra.tools.offline import MOCK_ACCOUNT_ID, mock_access_key_id
from tests.fakes.engine import InProcessEngine, ProviderCheckFailed
from tests.fakes.modal_fixtures import CI_SERVICE_USER
from tests.stacks import stack_config

ROLES = {"modalServiceUserRoles": {CI_SERVICE_USER: "contributor"}}
SECRET = "rentagpu-runtime"


@pytest.fixture
def modal_env(deploy_modal_env):  # noqa: F811 - pytest passes the imported fixture by name
    """The program ends with the app deploy (stage 4), so the fake must take deploys too."""
    return deploy_modal_env


def expected_secret(stack: str, **extra: str) -> dict[str, str]:
    values = {
        "AWS_REGION": "eu-west-1",
        "RENTAGPU_BUCKET": f"acme-ml-rentagpu-{stack}",
        "RENTAGPU_INPUT_PREFIX": "jobs/input/",
        "RENTAGPU_OUTPUT_PREFIX": "jobs/output/",
    }
    return {**values, **extra}


def opened(result, location: str, secret_name: str) -> str:
    """A GitHub secret the up declared, opened with the mocked GitHub's private key for its place."""
    from tests.stages.github.support import open_secret

    return open_secret(result.rendering, location, secret_name)


def runtime_role(stack: str) -> str:
    return f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/rentagpu/{stack}/rentagpu-{stack}-runtime"


def test_both_stacks_come_up_in_modal_with_the_wiring_the_program_declares(modal_env) -> None:
    engines = {stack: InProcessEngine() for stack in ("dev", "prod")}
    for stack, engine in engines.items():
        result = engine.up(stack_config(stack, **ROLES))
        # prod must have a spend cap; dev's config sets none here
        budget = [f"{stack}-modal-budget"] if stack == "prod" else []
        assert sorted(result.created) == [
            f"{stack}-app-deployment",
            f"{stack}-ci-deploy-token-1",
            f"{stack}-ci-read-token-1",
            *budget,
            f"{stack}-modal-environment",
            f"{stack}-modal-runtime-secret",
        ]

    state = modal_env.state.snapshot()
    assert state["environments"]["dev"]["restricted"] is False
    assert state["environments"]["prod"]["restricted"] is True
    assert state["environments"]["prod"]["budget_dollars"] == 500.0  # tests/stacks.py's prod
    assert state["environments"]["dev"]["budget_dollars"] is None
    for stack in ("dev", "prod"):
        # the configured role, and CI's two minted service users, each in its one role
        assert state["environments"][stack]["roles"] == {
            f"service_user:{CI_SERVICE_USER}": "contributor",
            f"service_user:rentagpu-{stack}-ci-deploy-1": "contributor",
            f"service_user:rentagpu-{stack}-ci-read-1": "viewer",
        }
        # the runtime role ARN is the AWS stage's output, carried into Modal by the program
        assert state["secrets"][f"{stack}/{SECRET}"] == expected_secret(
            stack, AWS_ROLE_ARN=runtime_role(stack)
        )
    assert modal_env.unimplemented_calls() == []


def test_a_second_up_with_unchanged_config_changes_nothing_in_modal(modal_env) -> None:
    engine = InProcessEngine()
    engine.up(stack_config("dev", **ROLES))
    modal_env.clear_calls()
    result = engine.up(stack_config("dev", **ROLES))
    assert result.created == [] and result.updated == [] and result.deleted == []
    assert sorted(result.unchanged) == [
        "dev-app-deployment",
        "dev-ci-deploy-token-1",
        "dev-ci-read-token-1",
        "dev-modal-environment",
        "dev-modal-runtime-secret",
    ]
    assert modal_env.mutating_calls() == []


def test_a_config_change_overwrites_the_secret_in_place(modal_env) -> None:
    engine = InProcessEngine()
    engine.up(stack_config("dev", **ROLES))
    modal_env.clear_calls()
    result = engine.up(stack_config("dev", outputPrefix="jobs/results/", **ROLES))
    assert result.updated == ["dev-modal-runtime-secret", "dev-app-deployment"]
    assert (
        modal_env.state.snapshot()["secrets"][f"dev/{SECRET}"]["RENTAGPU_OUTPUT_PREFIX"]
        == "jobs/results/"
    )
    # one overwrite, never a delete: there is no moment without the secret
    assert "SecretDelete" not in modal_env.rpc_names()


def test_access_key_mode_puts_the_key_in_modal_and_a_new_serial_replaces_it(modal_env) -> None:
    engine = InProcessEngine()
    engine.up(stack_config("dev", awsAuth="access-key", **ROLES))
    values = modal_env.state.snapshot()["secrets"][f"dev/{SECRET}"]
    assert "AWS_ROLE_ARN" not in values
    assert values["AWS_ACCESS_KEY_ID"] == mock_access_key_id("dev-runtime-key-1")
    assert values["AWS_SECRET_ACCESS_KEY"] == "mock-secret-access-key"

    result = engine.up(stack_config("dev", awsAuth="access-key", accessKeySerial=2, **ROLES))
    assert result.updated == ["dev-modal-runtime-secret", "dev-app-deployment"]
    values = modal_env.state.snapshot()["secrets"][f"dev/{SECRET}"]
    assert values["AWS_ACCESS_KEY_ID"] == mock_access_key_id("dev-runtime-key-2")


def test_the_ci_tokens_never_reach_modal_and_modal_values_never_reach_the_plan(modal_env) -> None:
    engine = InProcessEngine()
    result = engine.up(stack_config("prod", **ROLES))
    tokens = [
        opened(result, "prod", "MODAL_TOKEN_SECRET"),
        opened(result, "prod-readonly", "MODAL_READ_TOKEN_SECRET"),
    ]
    snapshot = repr(modal_env.state.snapshot())
    for token in tokens:
        assert token not in snapshot  # GitHub's tokens stay in GitHub
    secret = result.rendering.one("pulumi-python:dynamic/rentagpu:ModalSecret")
    assert secret.inputs["values"] == "[secret]"


def test_a_service_user_missing_from_the_workspace_fails_the_up_and_names_it(modal_env) -> None:
    engine = InProcessEngine()
    with pytest.raises(Exception) as caught:
        engine.up(stack_config("dev", modalServiceUserRoles={"no-such-user": "viewer"}))
    assert "no-such-user" in str(caught.value)
    assert not isinstance(caught.value, ProviderCheckFailed)
    assert f"dev/{SECRET}" not in modal_env.state.snapshot()["secrets"]


def test_switching_auth_mode_leaves_no_key_of_the_old_mode_in_the_secret(modal_env) -> None:
    """The app refuses a secret holding both modes' keys, so a switch must overwrite, not merge."""
    engine = InProcessEngine()
    engine.up(stack_config("dev", **ROLES))
    engine.up(stack_config("dev", awsAuth="access-key", **ROLES))
    values = modal_env.state.snapshot()["secrets"][f"dev/{SECRET}"]
    assert "AWS_ROLE_ARN" not in values and "AWS_ACCESS_KEY_ID" in values
    engine.up(stack_config("dev", **ROLES))
    values = modal_env.state.snapshot()["secrets"][f"dev/{SECRET}"]
    assert values == expected_secret("dev", AWS_ROLE_ARN=runtime_role("dev"))


def test_renaming_the_app_deploys_the_new_one_then_stops_the_old_one(modal_env) -> None:
    """A rename is a replacement: create the new app first, delete (stop) the old one after."""
    from tests.fakes.modal_deploy import live_version

    engine = InProcessEngine()
    engine.up(stack_config("dev", **ROLES))
    assert live_version(modal_env.state, "dev", "rentagpu-executor") is not None

    result = engine.up(stack_config("dev", modalAppName="rentagpu-executor-2", **ROLES))

    assert result.replaced == ["dev-app-deployment"]
    assert live_version(modal_env.state, "dev", "rentagpu-executor-2") is not None
    assert live_version(modal_env.state, "dev", "rentagpu-executor") is None


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_stacks_first_preview_passes_every_providers_check(stack) -> None:
    """The first `pulumi preview` of a stack, before anything exists: the Modal secret's role ARN,
    the deployment's secret id and fingerprint are unknown, and reach the providers' `check` as
    `pulumi.output.Unknown` (tests/fakes/test_engine.py). Nothing is created."""
    engine = InProcessEngine()
    planned = engine.preview(stack_config(stack))
    expected = {f"{stack}-modal-environment", f"{stack}-modal-runtime-secret"}
    expected |= {f"{stack}-ci-deploy-token-1", f"{stack}-ci-read-token-1"}
    expected |= {f"{stack}-app-deployment"} | ({"prod-modal-budget"} if stack == "prod" else set())
    assert set(planned.created) == expected  # prod must set a spend cap
    assert engine.state == {}


def test_a_spend_cap_removed_by_hand_is_restored_by_the_next_up(modal_env) -> None:
    engine = InProcessEngine()
    engine.up(stack_config("prod", **ROLES))
    modal_env.state.environments["prod"].budget_dollars = None  # cleared in Modal by hand
    modal_env.clear_calls()

    result = engine.up(stack_config("prod", **ROLES))  # no refresh first, as deploy.yml runs it

    assert result.updated == ["prod-modal-budget"]
    assert modal_env.state.environments["prod"].budget_dollars == 500.0
    sets = [c.request for c in modal_env.calls if c.rpc == "EnvironmentSetBudget"]
    assert [r.cycle_budget_dollars for r in sets] == [500.0]


def test_a_dev_cap_is_set_changed_and_cleared_with_the_config(modal_env) -> None:
    engine = InProcessEngine()
    engine.up(stack_config("dev", monthlyBudgetDollars=50, **ROLES))
    assert modal_env.state.environments["dev"].budget_dollars == 50.0

    assert engine.up(stack_config("dev", monthlyBudgetDollars=80, **ROLES)).updated == [
        "dev-modal-budget"
    ]
    assert modal_env.state.environments["dev"].budget_dollars == 80.0

    result = engine.up(stack_config("dev", **ROLES))  # the key removed from the stack
    assert result.deleted == ["dev-modal-budget"]
    assert modal_env.state.environments["dev"].budget_dollars is None


def test_ci_tokens_are_minted_sealed_for_github_and_rotated_with_an_overlap(modal_env) -> None:
    """`pulumi up` mints CI's tokens, and only GitHub can open what it stores; a new serial
    replaces them, the old service users deleted only after the new tokens are in GitHub."""
    engine = InProcessEngine()
    first = engine.up(stack_config("dev", **ROLES))
    deploy = (opened(first, "dev", "MODAL_TOKEN_ID"), opened(first, "dev", "MODAL_TOKEN_SECRET"))
    read = (
        opened(first, "repository", "RENTAGPU_DEV_MODAL_READ_TOKEN_ID"),
        opened(first, "repository", "RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET"),
    )
    assert who(modal_env, deploy) == "rentagpu-dev-ci-deploy-1"
    assert who(modal_env, read) == "rentagpu-dev-ci-read-1"
    # Nowhere in the stack's state (inputs and outputs of every resource) or the plan's inputs.
    everything = repr(engine.state) + repr([r.raw_inputs for r in first.rendering.resources])
    assert deploy[1] not in everything and read[1] not in everything

    modal_env.clear_calls()
    second = engine.up(stack_config("dev", ciTokenSerial=2, **ROLES))

    assert sorted(second.deleted) == ["dev-ci-deploy-token-1", "dev-ci-read-token-1"]
    new = (opened(second, "dev", "MODAL_TOKEN_ID"), opened(second, "dev", "MODAL_TOKEN_SECRET"))
    assert who(modal_env, new) == "rentagpu-dev-ci-deploy-2"
    assert who(modal_env, deploy) is None  # the old service user, and its token, are gone
    calls = [(c.rpc, c.request) for c in modal_env.calls if c.rpc.startswith("ServiceUser")]
    created = [i for i, (rpc, _) in enumerate(calls) if rpc == "ServiceUserCreate"]
    deleted = [i for i, (rpc, _) in enumerate(calls) if rpc == "ServiceUserDelete"]
    # The engine deletes what a replacement left behind after every other step of the update
    # (tests/fakes/test_engine.py), so the GitHub secrets already hold the new tokens then.
    assert len(created) == 2 and len(deleted) == 2 and max(created) < min(deleted)


def who(modal_env, token: tuple[str, str]) -> str | None:
    caller = modal_env.server.authenticate(
        {"x-modal-token-id": token[0], "x-modal-token-secret": token[1]}
    )
    return None if caller is None else caller.principal.name
