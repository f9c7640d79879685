"""The deployed Modal environments on the real Modal are what the stacks declare.

Read-only: only the providers' `read` runs. Needs MODAL_TOKEN_ID and MODAL_TOKEN_SECRET of a
workspace where the stacks are deployed.
"""

from __future__ import annotations

import pytest

from infra.core.config import parse_config
from infra.modal_hook.environment import ModalEnvironmentProvider
from infra.modal_hook.secret import ModalSecretProvider
from infra.tools.plan import load_config
from modal_app import contract
from tests.cloud.conftest import require

pytestmark = pytest.mark.cloud


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_environment_and_runtime_secret_match_the_stack(stack, monkeypatch) -> None:
    for name, value in require("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET").items():
        monkeypatch.setenv(name, value)
    cfg = parse_config(stack, load_config(stack).raw)
    roles = dict(cfg.modal.service_user_roles)
    environment = ModalEnvironmentProvider().read(
        stack, {"environment_name": stack, "service_user_roles": roles}
    )
    assert environment.id == stack, f"Modal environment {stack!r} does not exist"
    assert environment.outs["restricted"] is cfg.modal.restricted
    assert environment.outs["service_user_roles"] == roles

    secret = ModalSecretProvider().read(
        f"{stack}/{contract.SECRET_NAME}",
        {"environment_name": stack, "secret_name": contract.SECRET_NAME},
    )
    assert secret.id, f"Modal secret {contract.SECRET_NAME!r} is missing in {stack!r}"
    assert sorted(secret.outs["keys"]) == sorted(contract.required_keys(cfg.aws.auth_mode))
