"""ModalCiTokenProvider against the fake Modal server, through the real SDK's stubs.

The RPCs and fields are modal 1.6.4's (modal_proto/api_pb2.pyi): ServiceUserCreateRequest `name`,
`scoped`, `expires_in_seconds` (fields 1-3) and its response's `token_id`, `token_secret`,
`service_user_id`, `expires_at`; EnvironmentRoleSetRequest `environment_id`, `service_user_id`,
`role_str`; TokenInfoGetResponse's `identity` oneof (`user_identity` / `service_user_identity`);
ServiceUserInfo/List `environment_roles`; ServiceUserDeleteRequest `service_user_id`.
"""

from __future__ import annotations

import base64
import time

import pytest
from grpclib import Status
from nacl.public import PrivateKey, SealedBox

from infra.core.errors import ModalCallError, ModalHookError
from infra.modal_hook.ci_token import DAY, ModalCiTokenProvider, due
from tests.fakes.modal_fixtures import CI_SERVICE_USER
from tests.modal_hook.support import FAST, checked

GITHUB = PrivateKey.generate()  # stands for the GitHub environment's key pair


@pytest.fixture
def provider() -> ModalCiTokenProvider:
    return ModalCiTokenProvider(FAST)


def minted(environment: str = "dev", role: str = "contributor", **overrides) -> dict:
    return {
        "environment_name": environment,
        "role": role,
        "service_user_name": f"rentagpu-{environment}-ci-deploy-1",
        "lifetime_days": 90,
        "public_key": base64.b64encode(bytes(GITHUB.public_key)).decode(),
        "key_id": "568250167242549743",
        **overrides,
    }


def opened(sealed: str) -> str:
    return SealedBox(GITHUB).decrypt(base64.b64decode(sealed)).decode()


def identity(modal_env, token: tuple[str, str]) -> str | None:
    """Who the fake server says a token belongs to (None: refused)."""
    caller = modal_env.server.authenticate(
        {"x-modal-token-id": token[0], "x-modal-token-secret": token[1]}
    )
    return None if caller is None else caller.principal.name


def test_a_minted_token_is_a_scoped_expiring_service_user_in_one_role_sealed_for_github(
    modal_env, provider
) -> None:
    dev = modal_env.state.add_environment("dev")
    modal_env.state.add_environment("prod", restricted=True)
    before = time.time()

    created = provider.create(checked(provider, minted()))

    (sent,) = [c.request for c in modal_env.calls if c.rpc == "ServiceUserCreate"]
    assert (sent.name, sent.scoped, sent.expires_in_seconds) == (
        "rentagpu-dev-ci-deploy-1",
        True,
        90 * DAY,
    )
    (granted,) = [c.request for c in modal_env.calls if c.rpc == "EnvironmentRoleSet"]
    assert (granted.environment_id, granted.role_str) == (dev.id, "contributor")
    # The token came back only as ciphertext for GitHub; it works, and it is that service user.
    token = (opened(created.outs["sealed_token_id"]), opened(created.outs["sealed_token_secret"]))
    assert identity(modal_env, token) == "rentagpu-dev-ci-deploy-1"
    assert created.outs["minted_token_id"] == token[0]
    assert token[1] not in repr(created.outs)
    assert created.id == created.outs["service_user_id"]
    assert before + 90 * DAY - 5 < created.outs["expires_at"] < time.time() + 90 * DAY + 5
    # It checked the token with the token itself (TokenInfoGet as the new service user).
    (info,) = [c for c in modal_env.calls if c.rpc == "TokenInfoGet"]
    assert info.principal == "rentagpu-dev-ci-deploy-1"
    assert modal_env.unimplemented_calls() == []


def test_a_dev_token_reaches_nothing_of_prod(modal_env, provider) -> None:
    """Scoped, with one role: in the fake (our reading of `scoped`, see README) it can deploy to
    dev and nowhere else, restricted prod or any other environment."""
    modal_env.state.add_environment("dev")
    modal_env.state.add_environment("prod", restricted=True)
    modal_env.state.add_environment("scratch")
    created = provider.create(checked(provider, minted()))
    token = (opened(created.outs["sealed_token_id"]), opened(created.outs["sealed_token_secret"]))
    user = modal_env.state.principal_named("rentagpu-dev-ci-deploy-1", "service_user")
    assert user is not None and user.scoped
    roles = {
        name: modal_env.state.role_of(env, user)[0]
        for name, env in modal_env.state.environments.items()
    }
    assert roles == {
        "main": "no-access",  # the workspace's default environment
        "dev": "contributor",
        "prod": "no-access",
        "scratch": "no-access",
    }
    assert identity(modal_env, token) == "rentagpu-dev-ci-deploy-1"


def test_an_expired_token_is_refused_and_a_token_in_its_last_third_is_due() -> None:
    now = time.time()
    assert due(now + 29 * DAY, 90, now) is True  # less than a third of 90 days left
    assert due(now + 31 * DAY, 90, now) is False
    assert due(now - 1, 90, now) is True
    assert due(0, 90, now) is False  # no expiry recorded (an adopted token)


def test_a_due_token_is_replaced_by_the_next_up(modal_env, provider) -> None:
    modal_env.state.add_environment("dev")
    created = provider.create(checked(provider, minted()))
    news = checked(provider, minted())
    assert provider.diff(created.id, created.outs, news).changes is False
    aged = {**created.outs, "expires_at": time.time() + 10 * DAY}
    diff = provider.diff(created.id, aged, news)
    assert diff.changes is True and diff.replaces and not diff.delete_before_replace


def test_a_failed_grant_leaves_no_service_user_behind(modal_env, provider) -> None:
    modal_env.state.add_environment("dev")
    modal_env.inject("EnvironmentRoleSet", Status.PERMISSION_DENIED, times=1)
    with pytest.raises(ModalCallError):
        provider.create(checked(provider, minted()))
    assert modal_env.state.principal_named("rentagpu-dev-ci-deploy-1", "service_user") is None
    assert "ServiceUserDelete" in modal_env.rpc_names()


def test_a_missing_environment_is_named_before_any_service_user_is_made(
    modal_env, provider
) -> None:
    with pytest.raises(ModalCallError) as caught:
        provider.create(checked(provider, minted(environment="nowhere")))
    assert "environment 'nowhere' does not exist" in str(caught.value)
    assert "ServiceUserCreate" not in modal_env.rpc_names()


def test_read_reports_a_changed_role_and_a_deleted_service_user(modal_env, provider) -> None:
    modal_env.state.add_environment("dev")
    modal_env.state.add_environment("prod", restricted=True)
    created = provider.create(checked(provider, minted()))
    assert provider.read(created.id, created.outs).outs == created.outs

    modal_env.state.set_role("prod", "rentagpu-dev-ci-deploy-1", "contributor")  # by hand
    read = provider.read(created.id, created.outs)
    assert read.outs["role"] == "contributor in 'dev', contributor in 'prod'"
    assert provider.diff(created.id, read.outs, checked(provider, minted())).replaces

    provider.delete(created.id, created.outs)
    assert modal_env.state.principal_named("rentagpu-dev-ci-deploy-1", "service_user") is None
    assert provider.read(created.id, created.outs).id == ""
    provider.delete(created.id, created.outs)  # already gone is fine


def test_a_personal_token_is_refused_for_ci(modal_env, provider) -> None:
    """The fallback adopts a token someone made; one that belongs to a person is refused."""
    modal_env.state.add_environment("dev")
    person = (modal_env.token_id, modal_env.token_secret)  # the workspace owner's own token
    props = minted(service_user_name="", token_id=person[0], token_secret=person[1])
    with pytest.raises(ModalHookError) as caught:
        provider.create(checked(provider, props))
    message = str(caught.value)
    assert "belongs to a person, not a service user" in message
    assert person[1] not in message


def test_an_adopted_token_must_hold_exactly_its_one_role(modal_env, provider) -> None:
    modal_env.state.add_environment("dev")
    modal_env.state.add_environment("prod", restricted=True)
    token = modal_env.server.add_token(CI_SERVICE_USER, kind="service_user")
    props = minted(service_user_name="", token_id=token[0], token_secret=token[1])
    modal_env.state.set_role("dev", CI_SERVICE_USER, "contributor")
    modal_env.state.set_role("prod", CI_SERVICE_USER, "contributor")  # shared with prod

    with pytest.raises(ModalHookError) as caught:
        provider.create(checked(provider, props))
    assert "contributor in 'prod'" in str(caught.value)
    assert token[1] not in str(caught.value)

    modal_env.state.set_role("prod", CI_SERVICE_USER, "no-access")
    del modal_env.state.environments["prod"].roles[
        modal_env.state.principal_named(CI_SERVICE_USER, "service_user").id
    ]
    adopted = provider.create(checked(provider, props))
    assert opened(adopted.outs["sealed_token_secret"]) == token[1]
    provider.delete(adopted.id, adopted.outs)  # an adopted service user is the person's to remove
    assert modal_env.state.principal_named(CI_SERVICE_USER, "service_user") is not None


@pytest.mark.parametrize(
    ("overrides", "prop"),
    [
        ({"role": "owner"}, "role"),
        ({"lifetime_days": 0}, "lifetime_days"),
        ({"service_user_name": "bad name"}, "service_user_name"),
        ({"service_user_name": ""}, "service_user_name"),
        ({"token_id": "ak-x", "token_secret": "as-y"}, "token_id"),
    ],
)
def test_bad_inputs_are_named_at_check(provider, overrides, prop) -> None:
    result = provider.check({}, minted(**overrides))
    assert prop in [f.property for f in result.failures], result.failures


def test_a_drift_check_with_a_viewer_token_keeps_the_state_when_it_may_not_list_users(
    modal_env, provider, monkeypatch
) -> None:
    """Drift checks refresh with CI's read token (a viewer). Whether Modal lets a viewer list
    service users is not documented (the fake answers PERMISSION_DENIED): the refresh then keeps
    what the state says, with a warning, instead of failing the whole drift check."""
    modal_env.state.add_environment("dev")
    viewer = provider.create(
        checked(provider, minted(role="viewer", service_user_name="rentagpu-dev-ci-read-1"))
    )
    token = (opened(viewer.outs["sealed_token_id"]), opened(viewer.outs["sealed_token_secret"]))
    modal_env.use(monkeypatch, token)
    assert provider.read(viewer.id, viewer.outs).outs == viewer.outs
    (refused,) = [c for c in modal_env.calls if c.rpc == "ServiceUserList" and c.status != "OK"]
    assert refused.status == "PERMISSION_DENIED"
