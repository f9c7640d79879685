import logging

import pytest

from infra.modal_hook.deployment import ModalAppDeploymentProvider
from infra.modal_hook.environment import ModalEnvironmentProvider
from infra.modal_hook.secret import ModalSecretProvider
from tests.modal_hook.deploy_support import DEPLOY_POLICY, copy_source
from tests.modal_hook.support import FAST


@pytest.fixture
def environment_provider() -> ModalEnvironmentProvider:
    return ModalEnvironmentProvider(FAST)


@pytest.fixture
def secret_provider() -> ModalSecretProvider:
    return ModalSecretProvider(FAST)


@pytest.fixture
def source(tmp_path):
    """A private copy of the repository's modal_app/, which a test may edit."""
    return copy_source(tmp_path / "checkout")


@pytest.fixture
def provider(source) -> ModalAppDeploymentProvider:
    # The deploy and smoke bounds scaled down to what a local fake needs.
    return ModalAppDeploymentProvider(
        DEPLOY_POLICY, deploy_timeout_s=120, smoke_timeout_s=30, source_root=str(source)
    )


# The loggers a Modal call can write to: the SDK's, gRPC's, and the hook's own.
LOGGERS = ("modal-client", "modal-utils", "grpclib", "infra.modal_hook")


@pytest.fixture
def all_logs(caplog):
    """Every log record at DEBUG, including loggers that do not propagate to root (for tests that
    search every log line for a planted secret)."""
    caplog.set_level(logging.DEBUG)
    attached = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
            attached.append(logger)
        logger.setLevel(logging.DEBUG)
    yield caplog
    for logger in attached:
        logger.removeHandler(caplog.handler)
