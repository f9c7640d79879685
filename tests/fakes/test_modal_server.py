"""The fake Modal server itself: what the hook's tests rely on it to do, checked with the real SDK."""

from __future__ import annotations

import modal
import pytest
from grpclib import Status
from modal.exception import AuthError, UnimplementedError


def _client(fake, token=None):
    token_id, token_secret = token or (fake.token_id, fake.token_secret)
    return modal.Client.from_credentials(token_id, token_secret)


def test_an_rpc_it_does_not_implement_fails_loudly_and_is_recorded(modal_env):
    with _client(modal_env) as client, pytest.raises(UnimplementedError):
        modal.Volume.objects.list(environment_name="main", client=client)
    [call] = modal_env.unimplemented_calls()
    assert call.rpc == "VolumeList"
    assert call.mutating is True  # unknown RPCs count as mutations until classified


def test_a_wrong_token_is_rejected_and_recorded(shared_modal):
    with _client(shared_modal, token=(shared_modal.token_id, "as-wrong")) as client:
        with pytest.raises(AuthError):
            modal.Secret.objects.list(environment_name="main", client=client)
    assert [(c.rpc, c.status, c.principal) for c in shared_modal.calls] == [
        ("SecretList", "UNAUTHENTICATED", None)
    ]


def test_recorded_headers_never_hold_the_token_secret(shared_modal):
    with _client(shared_modal) as client:
        modal.Secret.objects.list(environment_name="main", client=client)
    [call] = shared_modal.calls
    assert call.metadata["x-modal-token-id"] == shared_modal.token_id
    assert shared_modal.token_secret not in repr(call)


def test_injected_faults_are_consumed_in_order(modal_env):
    modal_env.inject("SecretList", Status.UNAVAILABLE, times=2)
    with _client(modal_env) as client:  # the SDK's own retries absorb two UNAVAILABLEs
        modal.Secret.objects.list(environment_name="main", client=client)
    assert [c.status for c in modal_env.calls] == ["UNAVAILABLE", "UNAVAILABLE", "OK"]


def test_fault_injection_refuses_a_misspelt_rpc(shared_modal):
    with pytest.raises(ValueError, match="not an RPC"):
        shared_modal.inject("SecretGetOrCreat")


def test_deleting_an_environment_deletes_what_it_holds(fake_modal):
    state = fake_modal.state
    state.add_environment("dev")
    state.put_secret("dev", "s", {"K": "v"})
    state.add_app("dev", "app")
    state.delete_environment("dev")
    assert state.snapshot()["secrets"] == {} and state.snapshot()["apps"] == []
