import pytest

from infra.modal_hook import ModalAppDeploymentProvider
from tests.deploy.support import FAST, copy_source
from tests.fakes.modal_deploy import deploy_modal, deploy_modal_env  # noqa: F401


@pytest.fixture
def source(tmp_path):
    """A private copy of the repository's modal_app/, which a test may edit."""
    return copy_source(tmp_path / "checkout")


@pytest.fixture
def provider(source) -> ModalAppDeploymentProvider:
    # The deploy and smoke bounds scaled down to what a local fake needs.
    return ModalAppDeploymentProvider(
        FAST, deploy_timeout_s=120, smoke_timeout_s=30, source_root=str(source)
    )
