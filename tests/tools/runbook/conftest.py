"""Fixtures for rotation and incident tests: the fake Modal server (from tests/conftest.py), the
moto server in IAM enforcement mode, and stacks whose tokens are real tokens of the fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.core.config import RawValue
from tests.fakes.aws_fixtures import MotoServer, unique
from tests.fakes.engine import InProcessEngine
from tests.fakes.modal_fixtures import CI_SERVICE_USER, FakeModal
from tests.stacks import PLANTED, raw_config
from tests.tools.runbook.support import (
    DEPLOY_TYPE,
    DeployStub,
    InProcessStack,
    destroy_handled,
    iam_handlers,
)


@pytest.fixture
def ci_token(modal_env: FakeModal) -> tuple[str, str]:
    """The CI service user's current token, known to the fake Modal server."""
    return modal_env.server.add_token(CI_SERVICE_USER, kind="service_user")


def token_config(token: tuple[str, str], **overrides: object) -> dict[str, object]:
    return {
        "modalTokenId": RawValue(token[0], secret=True),
        "modalTokenSecret": RawValue(token[1], secret=True),
        "modalServiceUserRoles": {CI_SERVICE_USER: "contributor"},
        **overrides,
    }


DEV_SERVICE_USER = "rentagpu-ci-dev"


@pytest.fixture
def dev_token(modal_env: FakeModal) -> tuple[str, str]:
    """dev's own CI token: in modal 1.6.4 a service user has one token, so one user per stack."""
    modal_env.state.add_service_user(DEV_SERVICE_USER)
    return modal_env.server.add_token(DEV_SERVICE_USER, kind="service_user")


@pytest.fixture
def stacks(
    modal_env: FakeModal, ci_token: tuple[str, str], dev_token: tuple[str, str]
) -> dict[str, InProcessStack]:
    """prod deploying with `ci_token` (service user rentagpu-ci), dev with its own token."""
    configs = {
        "prod": token_config(ci_token),
        "dev": token_config(dev_token, modalServiceUserRoles={DEV_SERVICE_USER: "contributor"}),
    }
    return {
        stack: InProcessStack(
            stack,
            raw_config(stack, **config),
            InProcessEngine(handlers={DEPLOY_TYPE: DeployStub()}),
        )
        for stack, config in configs.items()
    }


@pytest.fixture
def aws_operator(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The operator's AWS credentials (moto's admin) and endpoint, as a shell would export them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.admin.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return moto_server


@pytest.fixture
def key_stack(
    modal_env: FakeModal, aws_operator: MotoServer, ci_token: tuple[str, str]
) -> Iterator[InProcessStack]:
    """dev in access-key mode, brought up: the runtime user and key live in moto, the key in the
    fake Modal secret; its bucket holds one input object."""
    bucket = unique("rentagpu-dev")
    s3 = aws_operator.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="jobs/input/job-1.json", Body=b"{}")
    engine = InProcessEngine(handlers={**iam_handlers(aws_operator), DEPLOY_TYPE: DeployStub()})
    config = raw_config("dev", **token_config(ci_token, awsAuth="access-key", bucket=bucket))
    stack = InProcessStack("dev", config, engine)
    stack.up()
    try:
        yield stack
    finally:
        destroy_handled(engine)


SECRETS_PLANTED = list(PLANTED.values())
