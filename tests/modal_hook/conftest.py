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
