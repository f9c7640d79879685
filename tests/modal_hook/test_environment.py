"""ModalEnvironmentProvider against the fake Modal server, driven by the real SDK."""

from __future__ import annotations

import pytest
from modal_proto import api_pb2

from infra.core.errors import Failure, ModalCallError, ModalHookError
from infra.modal_hook.environment import INHERITED_SUFFIX, ModalEnvironmentArgs
from tests.fakes.modal_fixtures import CI_SERVICE_USER
from tests.modal_hook.support import checked, dev_environment, prod_environment

CI = f"service_user:{CI_SERVICE_USER}"


def test_create_read_update_read_delete(modal_env, environment_provider):
    provider = environment_provider
    inputs = checked(provider, prod_environment())

    created = provider.create(inputs)
    assert created.id == "prod"
    env = modal_env.state.environments["prod"]
    assert env.restricted is True
    assert modal_env.state.snapshot()["environments"]["prod"]["roles"] == {CI: "contributor"}
    assert created.outs["environment_id"] == env.id
    assert created.outs["service_user_roles"] == {CI_SERVICE_USER: "contributor"}

    read = provider.read(created.id, created.outs)
    assert read.id == "prod"
    assert read.outs == created.outs

    news = checked(provider, prod_environment(service_user_roles={CI_SERVICE_USER: "viewer"}))
    diff = provider.diff(created.id, read.outs, news)
    assert diff.changes is True and diff.replaces == []
    updated = provider.update(created.id, read.outs, news)
    assert modal_env.state.snapshot()["environments"]["prod"]["roles"] == {CI: "viewer"}
    assert updated.outs["service_user_roles"] == {CI_SERVICE_USER: "viewer"}

    assert provider.read(created.id, updated.outs).outs == updated.outs

    provider.delete(created.id, updated.outs)
    assert "prod" not in modal_env.state.environments
    assert modal_env.unimplemented_calls() == []


def test_unchanged_inputs_send_no_mutating_rpc(modal_env, environment_provider):
    provider = environment_provider
    inputs = checked(provider, prod_environment())
    created = provider.create(inputs)
    modal_env.clear_calls()

    refreshed = provider.read(created.id, created.outs)  # pulumi refresh
    news = checked(provider, prod_environment(), olds=inputs)  # pulumi up: check, then diff
    diff = provider.diff(created.id, refreshed.outs, news)

    assert diff.changes is False
    assert refreshed.outs == created.outs
    assert modal_env.mutating_calls() == []
    assert modal_env.rpc_names() == ["EnvironmentList", "EnvironmentGetRoles"]


def test_create_adopts_an_existing_environment(modal_env, environment_provider):
    existing = modal_env.state.add_environment("dev")
    created = environment_provider.create(checked(environment_provider, dev_environment()))

    assert created.outs["environment_id"] == existing.id
    assert "EnvironmentCreate" not in modal_env.rpc_names()
    assert modal_env.state.snapshot()["environments"]["dev"]["roles"] == {CI: "contributor"}


def test_create_sets_a_role_explicitly_even_when_inherited_matches(modal_env, environment_provider):
    # In an unrestricted environment the CI user already inherits contributor; the hook still
    # assigns it, so a change of the default cannot change CI's access.
    environment_provider.create(checked(environment_provider, dev_environment()))
    roleset = [c for c in modal_env.calls if c.rpc == "EnvironmentRoleSet"]
    assert [(c.request.role_str, c.status) for c in roleset] == [("contributor", "OK")]


def test_adopting_an_unrestricted_prod_environment_fails_clearly(modal_env, environment_provider):
    modal_env.state.add_environment("prod", restricted=False)
    with pytest.raises(ModalCallError) as caught:
        environment_provider.create(checked(environment_provider, prod_environment()))
    message = str(caught.value)
    assert "'prod' exists and is not restricted" in message
    assert "modal environment delete prod" in message
    assert modal_env.mutating_calls() == []


def test_a_service_user_missing_from_the_workspace_is_named(modal_env, environment_provider):
    inputs = checked(environment_provider, prod_environment(service_user_roles={"ghost": "viewer"}))
    with pytest.raises(ModalCallError) as caught:
        environment_provider.create(inputs)
    assert caught.value.failure is Failure.NOT_FOUND
    assert "service user(s) ghost do not exist" in str(caught.value)
    assert "modalServiceUserRoles" in str(caught.value)


def test_read_reports_an_inherited_role_as_drift(modal_env, environment_provider):
    provider = environment_provider
    inputs = checked(provider, prod_environment())
    created = provider.create(inputs)
    modal_env.state.environments["prod"].roles.clear()  # explicit assignment removed by hand

    refreshed = provider.read(created.id, created.outs)
    assert refreshed.outs["service_user_roles"] == {CI_SERVICE_USER: "no-access" + INHERITED_SUFFIX}
    assert provider.diff(created.id, refreshed.outs, inputs).changes is True

    provider.update(created.id, refreshed.outs, inputs)
    assert modal_env.state.snapshot()["environments"]["prod"]["roles"] == {CI: "contributor"}


def test_changing_restricted_on_an_existing_environment_fails_clearly(
    modal_env, environment_provider
):
    provider = environment_provider
    created = provider.create(checked(provider, dev_environment()))
    news = checked(provider, dev_environment(restricted=True))
    assert provider.diff(created.id, created.outs, news).changes is True
    with pytest.raises(ModalCallError, match="cannot change that on an existing environment"):
        provider.update(created.id, created.outs, news)
    assert modal_env.state.environments["dev"].restricted is False


def test_renaming_replaces_the_environment(environment_provider):
    olds = {**dev_environment(), "environment_id": "en-x"}
    diff = environment_provider.diff("dev", olds, dev_environment(environment_name="dev2"))
    assert diff.replaces == ["environment_name"]
    assert diff.delete_before_replace is False


def test_allow_deletion_alone_changes_nothing_on_modal(modal_env, environment_provider):
    provider = environment_provider
    created = provider.create(checked(provider, dev_environment()))
    modal_env.clear_calls()
    news = checked(provider, dev_environment(allow_deletion=True))
    assert provider.diff(created.id, created.outs, news).changes is True
    updated = provider.update(created.id, created.outs, news)
    assert updated.outs == {**created.outs, "allow_deletion": True}
    assert modal_env.calls == []


def test_delete_refuses_an_environment_that_holds_apps_or_secrets(modal_env, environment_provider):
    provider = environment_provider
    created = provider.create(checked(provider, prod_environment()))
    modal_env.state.put_secret("prod", "left-behind", {"K": "v"})
    modal_env.state.add_app("prod", "rentagpu-executor")
    modal_env.state.add_app("prod", "old-app", state=api_pb2.APP_STATE_STOPPED)

    with pytest.raises(ModalHookError) as caught:
        provider.delete(created.id, created.outs)
    message = str(caught.value)
    assert "1 app(s) (rentagpu-executor)" in message
    assert "1 secret(s) (left-behind)" in message
    assert "allowModalEnvironmentDeletion" in message
    assert "prod" in modal_env.state.environments
    assert "EnvironmentDelete" not in modal_env.rpc_names()

    provider.delete(created.id, {**created.outs, "allow_deletion": True})
    assert "prod" not in modal_env.state.environments
    assert modal_env.state.secret_values("prod", "left-behind") is None


def test_delete_of_an_environment_that_is_already_gone_succeeds(modal_env, environment_provider):
    provider = environment_provider
    created = provider.create(checked(provider, dev_environment()))
    modal_env.state.delete_environment("dev")
    provider.delete(created.id, created.outs)
    assert "EnvironmentDelete" not in modal_env.rpc_names()


def test_check_names_every_bad_input(environment_provider):
    result = environment_provider.check(
        {},
        {
            "environment_name": "en-prod",
            "restricted": "yes",
            "service_user_roles": {"ci": "owner", "bad name": "viewer"},
        },
    )
    failures = {(f.property, f.reason) for f in result.failures}
    properties = {p for p, _ in failures}
    assert properties == {
        "environment_name",
        "restricted",
        "service_user_roles.ci",
        "service_user_roles.bad name",
    }
    assert any("contributor, viewer, no-access" in reason for _, reason in failures)


def test_check_accepts_unknown_values_during_preview(environment_provider):
    from pulumi.runtime.rpc import UNKNOWN

    result = environment_provider.check(
        {}, {"environment_name": UNKNOWN, "restricted": True, "service_user_roles": UNKNOWN}
    )
    assert result.failures == []
    diff = environment_provider.diff("prod", prod_environment(), result.inputs)
    assert diff.changes is True


def test_args_from_stack_config():
    from infra.core.config import RawValue, parse_config

    raw = {
        "rentagpu:environment": RawValue("prod"),
        "rentagpu:githubOwner": RawValue("acme"),
        "rentagpu:githubRepository": RawValue("rentagpu"),
        "rentagpu:reviewers": RawValue('["alice", "bob"]'),
        "aws:region": RawValue("us-east-1"),
        "rentagpu:bucket": RawValue("acme-rentagpu"),
        "rentagpu:modalWorkspaceId": RawValue("ac-1a2b3c4d5e6f"),
        "rentagpu:modalServiceUserRoles": RawValue('{"rentagpu-ci": "contributor"}'),
        "rentagpu:monthlyBudgetDollars": RawValue("500"),
        "rentagpu:modalTokenId": RawValue("id-from-test", secret=True),
        "rentagpu:modalTokenSecret": RawValue("secret-from-test", secret=True),
    }
    args = ModalEnvironmentArgs.from_config(parse_config("prod", raw))
    assert args == ModalEnvironmentArgs(
        environment_name="prod",
        restricted=True,
        service_user_roles={"rentagpu-ci": "contributor"},
        allow_deletion=False,
    )
