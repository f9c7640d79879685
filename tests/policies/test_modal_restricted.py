"""The policy modal-prod-environment-restricted (infra/policies/modal_restricted.py), driven through
the pack with hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

import pytest

from tests.policies.support import (
    GENERIC_DYNAMIC,
    MODAL_ENVIRONMENT_TYPE,
    check,
    context,
)


class TestModalProdEnvironmentRestricted:
    policy = "modal-prod-environment-restricted"

    def test_a_restricted_prod_environment_passes(self) -> None:
        props = {"environment_name": "prod", "restricted": True, "service_user_roles": {}}
        assert check(self.policy, MODAL_ENVIRONMENT_TYPE, props) == []

    def test_dev_may_be_unrestricted(self) -> None:
        props = {"environment_name": "dev", "restricted": False}
        assert check(self.policy, MODAL_ENVIRONMENT_TYPE, props, context("dev")) == []

    @pytest.mark.parametrize(
        ("typ", "props"),
        [
            (MODAL_ENVIRONMENT_TYPE, {"environment_name": "prod", "restricted": False}),
            (MODAL_ENVIRONMENT_TYPE, {"environment_name": "prod", "service_user_roles": {}}),
            (
                GENERIC_DYNAMIC,
                {"environment_name": "prod", "restricted": False, "service_user_roles": {}},
            ),
        ],
    )
    def test_an_unrestricted_prod_environment_is_refused(self, typ, props) -> None:
        (message,) = check(self.policy, typ, props)
        assert (
            "Modal environment 'prod' is not restricted" in message and "restricted=True" in message
        )
