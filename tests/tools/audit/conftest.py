"""Fixtures of the audit tests: a Modal workspace as `pulumi up` leaves it on the fake server, and a
stack's roles and runtime user in moto."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from infra.core import names
from tests.fakes.aws_fixtures import MotoServer
from tests.fakes.modal_fixtures import FakeModal
from tests.tools.audit.support import DAY, AwsStack


@pytest.fixture
def aws_stack(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AwsStack]]:
    made: list[AwsStack] = []

    def make(stack: str = "prod", auth: str = "oidc") -> AwsStack:
        built = AwsStack(moto_server, stack, auth)
        made.append(built)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.admin.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.admin.secret_access_key)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        return built

    yield make
    for built in made:
        built.delete()


def ci_user(environment: str, purpose: str = "deploy") -> str:
    """The service user `pulumi up` mints for CI (serial 1, the default)."""
    return names.ci_service_user(environment, purpose, 1)


def mint(modal: FakeModal, environment: str) -> None:
    """CI's two service users of `environment` as `pulumi up` leaves them: scoped, one role each,
    their tokens expiring in 90 days and used yesterday."""
    for purpose, role in names.CI_TOKEN_ROLES.items():
        name = ci_user(environment, purpose)
        modal.state.add_service_user(name, scoped=True)
        modal.state.set_role(environment, name, role)
        token_id, _ = modal.server.add_token(name, kind="service_user")
        times = modal.state.token_times[token_id]
        times.last_used_at = time.time() - DAY
        times.expires_at = time.time() + 80 * DAY


@pytest.fixture
def workspace(fake_modal: FakeModal) -> FakeModal:
    """dev and prod as `pulumi up` leaves them: each with CI's own minted service users."""
    state = fake_modal.state
    state.add_environment("dev")
    state.add_environment("prod", restricted=True)
    for env in ("dev", "prod"):
        mint(fake_modal, env)
        state.environments[env].budget_dollars = 500.0  # `pulumi up` set a spend cap
    return fake_modal
