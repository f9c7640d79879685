"""The policy runtime-cannot-escalate (infra/policies/runtime_principal.py), driven through the pack
with hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

import pytest

from infra.core import names
from infra.core import resource_types as T
from infra.stages.aws import iam
from tests.policies.support import (
    ACCOUNT,
    check,
    doc,
    role_policy,
)

RUNTIME_ROLE = names.role_name("prod", "runtime")


def runtime_with(*extra_actions: str) -> dict:
    document = iam.runtime_policy("b", "in/", "out/")
    document["Statement"][1]["Action"] += list(extra_actions)
    return role_policy(document, RUNTIME_ROLE)


class TestRuntimeCannotEscalate:
    policy = "runtime-cannot-escalate"

    def test_the_runtime_policy_and_boundary_pass(self) -> None:
        assert check(self.policy, T.AWS_ROLE_POLICY, runtime_with()) == []
        boundary = {
            "name": names.runtime_boundary_name("prod"),
            "policy": doc(iam.runtime_boundary("b")),
        }
        assert check(self.policy, T.AWS_POLICY, boundary) == []
        bounded = {"name": RUNTIME_ROLE, "permissionsBoundary": "arn:aws:iam::1:policy/x"}
        assert check(self.policy, T.AWS_ROLE, bounded) == []

    @pytest.mark.parametrize(
        "action", ["iam:PassRole", "sts:AssumeRole", "iam:*", "IAM:CreateAccessKey", "*"]
    )
    def test_iam_and_sts_are_refused(self, action) -> None:
        (message,) = check(self.policy, T.AWS_ROLE_POLICY, runtime_with(action))
        assert action in message and "never touch IAM or STS" in message

    def test_the_runtime_user_in_access_key_mode_is_covered_too(self) -> None:
        props = runtime_with("iam:PassRole") | {"user": names.runtime_user_name("prod")}
        del props["role"]
        assert check(self.policy, T.AWS_USER_POLICY, props)

    def test_an_unbounded_runtime_role_or_an_attachment_is_refused(self) -> None:
        (message,) = check(self.policy, T.AWS_ROLE, {"name": RUNTIME_ROLE})
        assert "no permissions boundary" in message
        attachment = {"role": RUNTIME_ROLE, "policyArn": "arn:aws:iam::1:policy/extra"}
        (message,) = check(self.policy, T.AWS_ROLE_POLICY_ATTACHMENT, attachment)
        assert "exactly its inline policy" in message

    def test_the_deploy_role_may_manage_iam(self) -> None:
        props = role_policy(iam.deploy_policy(ACCOUNT, "prod", False))
        assert check(self.policy, T.AWS_ROLE_POLICY, props) == []
