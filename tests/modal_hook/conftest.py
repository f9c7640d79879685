import pytest

from infra.modal_hook import ModalEnvironmentProvider, ModalSecretProvider
from tests.fakes.modal_fixtures import fake_modal, fake_modal_factory, modal_env  # noqa: F401
from tests.modal_hook.support import FAST


@pytest.fixture
def environment_provider() -> ModalEnvironmentProvider:
    return ModalEnvironmentProvider(FAST)


@pytest.fixture
def secret_provider() -> ModalSecretProvider:
    return ModalSecretProvider(FAST)
