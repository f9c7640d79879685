"""Fixtures of the audit tests: a Modal workspace as `pulumi up` leaves it on the fake server, and a
stack's roles and runtime user in moto."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakes.aws_fixtures import MotoServer
from tests.fakes.modal_fixtures import CI_SERVICE_USER, FakeModal
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


@pytest.fixture
def workspace(fake_modal: FakeModal) -> FakeModal:
    """dev and prod as `pulumi up` leaves them: the CI service user a scoped contributor in both,
    with a token used yesterday."""
    state = fake_modal.state
    state.add_environment("dev")
    state.add_environment("prod", restricted=True)
    for env in ("dev", "prod"):
        state.set_role(env, CI_SERVICE_USER, "contributor")
    state.principal_named(CI_SERVICE_USER, "service_user").scoped = True
    token_id, _ = fake_modal.server.add_token(CI_SERVICE_USER, kind="service_user")
    state.token_times[token_id].last_used_at = time.time() - DAY
    return fake_modal
