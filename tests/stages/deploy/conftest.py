from tests.fakes.modal_deploy import deploy_modal, deploy_modal_env  # noqa: F401
from tests.fakes.modal_fixtures import fake_modal, fake_modal_factory, modal_env  # noqa: F401
