"""ModalSecretProvider against the fake Modal server, driven by the real SDK."""

from __future__ import annotations

import pytest
from grpclib import Status
from modal_proto import api_pb2

from infra.core.errors import Failure, ModalCallError
from tests.modal_hook.support import SECRET_NAME, checked, planted, runtime_secret


@pytest.fixture
def prod(modal_env):
    modal_env.state.add_environment("prod", restricted=True)
    return modal_env


def test_create_read_update_read_delete(prod, secret_provider):
    provider = secret_provider
    first = {"AWS_REGION": "us-east-1", "RUNTIME_ROLE_ARN": planted("arn")}
    inputs = checked(provider, runtime_secret("prod", first))

    created = provider.create(inputs)
    assert created.id == f"prod/{SECRET_NAME}"
    assert prod.state.secret_values("prod", SECRET_NAME) == first
    assert created.outs["keys"] == ["AWS_REGION", "RUNTIME_ROLE_ARN"]
    assert created.outs["values"] == first
    secret_id = prod.state.secrets[("prod", SECRET_NAME)].id
    assert created.outs["secret_id"] == secret_id

    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    assert read.outs == created.outs

    second = {"AWS_REGION": "eu-west-1", "BUCKET": "acme-jobs"}
    news = checked(provider, runtime_secret("prod", second, required_keys=["AWS_REGION"]))
    assert provider.diff(created.id, read.outs, news).changes is True
    prod.clear_calls()
    updated = provider.update(created.id, read.outs, news)

    assert prod.state.secret_values("prod", SECRET_NAME) == second  # RUNTIME_ROLE_ARN is gone
    assert updated.outs["keys"] == ["AWS_REGION", "BUCKET"]
    assert updated.outs["secret_id"] == secret_id  # overwritten in place, never recreated
    writes = [(c.rpc, c.request.object_creation_type) for c in prod.calls]
    assert writes == [
        ("SecretGetOrCreate", api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS)
    ]

    assert provider.read(created.id, updated.outs).outs == updated.outs

    provider.delete(created.id, updated.outs)
    assert prod.state.secret_values("prod", SECRET_NAME) is None
    assert prod.unimplemented_calls() == []


def test_unchanged_inputs_send_no_mutating_rpc(prod, secret_provider):
    provider = secret_provider
    values = {"AWS_REGION": "us-east-1", "TOKEN": planted("token")}
    inputs = checked(provider, runtime_secret("prod", values))
    created = provider.create(inputs)
    prod.clear_calls()

    refreshed = provider.read(created.id, created.outs)  # pulumi refresh
    news = checked(provider, runtime_secret("prod", dict(values)), olds=inputs)  # pulumi up
    diff = provider.diff(created.id, refreshed.outs, news)

    assert diff.changes is False
    assert prod.mutating_calls() == []
    assert prod.rpc_names() == ["SecretGetOrCreate"]  # one lookup, no creation type


def test_create_takes_over_a_secret_the_guide_made_by_hand(prod, secret_provider):
    prod.state.put_secret("prod", SECRET_NAME, {"OLD": "value"})
    values = {"AWS_REGION": "us-east-1"}
    secret_provider.create(checked(secret_provider, runtime_secret("prod", values)))
    assert prod.state.secret_values("prod", SECRET_NAME) == values


def test_transient_unavailable_is_retried(prod, secret_provider):
    prod.inject("SecretGetOrCreate", Status.UNAVAILABLE, times=2)
    values = {"AWS_REGION": "us-east-1"}
    secret_provider.create(checked(secret_provider, runtime_secret("prod", values)))

    assert prod.state.secret_values("prod", SECRET_NAME) == values
    attempts = [c for c in prod.calls if c.rpc == "SecretGetOrCreate"]
    assert [c.status for c in attempts] == ["UNAVAILABLE", "UNAVAILABLE", "OK"]
    # One idempotency key across the attempts lets Modal drop a duplicate mutation.
    assert len({c.metadata["x-idempotency-key"] for c in attempts}) == 1


def test_deadline_exceeded_is_retried(prod, secret_provider):
    prod.inject("SecretGetOrCreate", Status.DEADLINE_EXCEEDED, times=1)
    values = {"AWS_REGION": "us-east-1"}
    secret_provider.create(checked(secret_provider, runtime_secret("prod", values)))
    assert prod.state.secret_values("prod", SECRET_NAME) == values


def test_a_failed_update_leaves_the_old_values(prod, secret_provider):
    provider = secret_provider
    old = {"AWS_REGION": "us-east-1", "TOKEN": planted("old")}
    created = provider.create(checked(provider, runtime_secret("prod", old)))
    prod.inject("SecretGetOrCreate", Status.UNAVAILABLE, times=None)
    new = {"AWS_REGION": "us-east-1", "TOKEN": planted("new")}

    with pytest.raises(ModalCallError) as caught:
        provider.update(created.id, created.outs, checked(provider, runtime_secret("prod", new)))

    assert caught.value.failure is Failure.UNAVAILABLE
    assert "UNAVAILABLE 4 times" in str(caught.value)
    assert prod.state.secret_values("prod", SECRET_NAME) == old
    assert "SecretDelete" not in prod.rpc_names()


def test_writing_into_a_missing_environment_says_to_create_it_first(modal_env, secret_provider):
    inputs = checked(secret_provider, runtime_secret("staging", {"K": "v"}))
    with pytest.raises(ModalCallError) as caught:
        secret_provider.create(inputs)
    assert caught.value.failure is Failure.NOT_FOUND
    assert "environment 'staging' does not exist" in str(caught.value)


def test_read_reports_a_changed_key_set(prod, secret_provider):
    provider = secret_provider
    inputs = checked(provider, runtime_secret("prod", {"AWS_REGION": "us-east-1"}))
    created = provider.create(inputs)
    prod.state.secrets[("prod", SECRET_NAME)].values["ADDED_BY_HAND"] = "x"

    refreshed = provider.read(created.id, created.outs)
    assert refreshed.outs["keys"] == ["ADDED_BY_HAND", "AWS_REGION"]
    assert provider.diff(created.id, refreshed.outs, inputs).changes is True

    provider.update(created.id, refreshed.outs, inputs)
    assert prod.state.secret_values("prod", SECRET_NAME) == {"AWS_REGION": "us-east-1"}


def test_renaming_creates_the_new_secret_before_deleting_the_old(secret_provider):
    olds = {**runtime_secret("prod", {"K": "v"}), "keys": ["K"], "secret_id": "st-x"}
    diff = secret_provider.diff("prod/x", olds, runtime_secret("prod", {"K": "v"}, secret_name="y"))
    assert diff.replaces == ["secret_name"]
    assert diff.delete_before_replace is False


def test_delete_of_a_secret_that_is_already_gone_succeeds(prod, secret_provider):
    created = secret_provider.create(checked(secret_provider, runtime_secret("prod", {"K": "v"})))
    del prod.state.secrets[("prod", SECRET_NAME)]
    secret_provider.delete(created.id, created.outs)
    assert "SecretDelete" not in prod.rpc_names()


def test_check_names_the_missing_required_keys(secret_provider):
    news = runtime_secret(
        "prod", {"AWS_REGION": "x"}, required_keys=["AWS_REGION", "BUCKET", "RUNTIME_ROLE_ARN"]
    )
    failures = [(f.property, f.reason) for f in secret_provider.check({}, news).failures]
    assert len(failures) == 1
    prop, reason = failures[0]
    assert prop == "values"
    assert "missing the required key(s) BUCKET, RUNTIME_ROLE_ARN" in reason


def test_check_rejects_bad_names_and_empty_values_without_echoing_values(secret_provider):
    value = planted("value")
    news = {
        "environment_name": "prod",
        "secret_name": "no spaces allowed",
        "values": {"1BAD": value, "OK": 7},
        "required_keys": [],
    }
    failures = secret_provider.check({}, news).failures
    reasons = " ".join(f.reason for f in failures)
    assert {f.property for f in failures} == {"secret_name", "values"}
    assert "'1BAD' is not an environment variable name" in reasons
    assert "value of OK must be a string" in reasons
    assert value not in reasons
    empty = secret_provider.check({}, runtime_secret("prod", {}, required_keys=[])).failures
    assert [f.reason for f in empty] == ["is empty; a Modal secret needs at least one key"]


def test_unknown_values_during_preview_are_a_change_not_a_failure(secret_provider):
    from pulumi.runtime.rpc import UNKNOWN

    result = secret_provider.check({}, runtime_secret("prod", {"K": "v"}) | {"values": UNKNOWN})
    assert result.failures == []
    olds = {**runtime_secret("prod", {"K": "v"}), "keys": ["K"]}
    assert secret_provider.diff("prod/x", olds, result.inputs).changes is True
