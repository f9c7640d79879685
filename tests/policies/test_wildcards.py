"""The policy iam-no-wildcards (infra/policies/wildcards.py), driven through the pack with
hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from infra.core import resource_types as T
from infra.policies import wildcards
from infra.stages.aws import iam
from tests.policies.support import ACCOUNT, allow, check, doc, role_policy


class TestIamNoWildcards:
    policy = "iam-no-wildcards"

    @pytest.mark.parametrize(
        ("typ", "props"),
        [
            (T.AWS_ROLE_POLICY, role_policy(iam.deploy_policy(ACCOUNT, "prod", True))),
            (T.AWS_ROLE_POLICY, role_policy(iam.read_only_policy(ACCOUNT, "prod", "b"))),
            (
                T.AWS_USER_POLICY,
                {"name": "s3", "user": "u", "policy": doc(iam.runtime_policy("b", "in/", "out/"))},
            ),
            (T.AWS_POLICY, {"name": "boundary", "policy": doc(iam.runtime_boundary("b"))}),
            # the TLS-only bucket policy: Principal '*' and s3:*, but a Deny
            (T.AWS_BUCKET_POLICY, {"bucket": "b", "policy": doc(iam.bucket_policy("b"))}),
        ],
        ids=["deploy", "read-only", "runtime-user", "boundary", "bucket-deny"],
    )
    def test_the_project_policy_builders_pass(self, typ, props) -> None:
        assert check(self.policy, typ, props) == []

    def test_no_read_only_exception_is_granted_by_default(self) -> None:
        assert dict(wildcards.RESOURCE_WILDCARD_EXCEPTIONS) == {}

    @pytest.mark.parametrize("action", ["*", "s3:*", "iam:*"])
    def test_wildcard_actions_are_refused(self, action) -> None:
        props = role_policy(allow(["s3:GetObject", action], ["arn:aws:s3:::b/*"]))
        (message,) = check(self.policy, T.AWS_ROLE_POLICY, props)
        assert f"allows {action}" in message and "name the exact actions" in message

    def test_a_wildcard_resource_is_refused_and_names_the_statement(self) -> None:
        document = allow(["s3:GetObject"], "*", Sid="ReadEverything")
        (message,) = check(self.policy, T.AWS_POLICY, {"name": "p", "policy": doc(document)})
        assert "'ReadEverything'" in message and "on every resource ('*')" in message

    def test_an_exception_covers_only_listed_read_only_actions(self, monkeypatch) -> None:
        monkeypatch.setattr(
            wildcards,
            "RESOURCE_WILDCARD_EXCEPTIONS",
            MappingProxyType({"s3:ListAllMyBuckets": "test", "s3:DeleteBucket": "a mistake"}),
        )
        listed = role_policy(allow("s3:ListAllMyBuckets", "*"))
        assert check(self.policy, T.AWS_ROLE_POLICY, listed) == []
        write = role_policy(allow("s3:DeleteBucket", "*"))
        assert check(self.policy, T.AWS_ROLE_POLICY, write)

    def test_allowing_everyone_in_a_bucket_policy_is_refused(self) -> None:
        document = allow("s3:GetObject", "arn:aws:s3:::b/*", Principal="*")
        (message,) = check(
            self.policy, T.AWS_BUCKET_POLICY, {"bucket": "b", "policy": doc(document)}
        )
        assert "allows anyone" in message

    def test_not_action_and_aws_managed_policies_are_refused(self) -> None:
        document = iam._document(
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}
        )
        (message,) = check(self.policy, T.AWS_ROLE_POLICY, role_policy(document))
        assert "NotAction" in message
        attachment = {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}
        (message,) = check(self.policy, T.AWS_ROLE_POLICY_ATTACHMENT, attachment)
        assert "AdministratorAccess" in message

    def test_a_document_that_is_not_json_is_refused(self) -> None:
        (message,) = check(
            self.policy, T.AWS_ROLE_POLICY, {"name": "p", "role": "r", "policy": "{"}
        )
        assert "not valid JSON" in message
