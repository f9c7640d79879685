"""The policy iam-arns-name-exact-resources (infra/policies/arn_wildcards.py), driven through the
pack with hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

import pytest

from infra.core import resource_types as T
from infra.stages.aws import iam
from tests.policies.support import (
    ACCOUNT,
    ISSUE_WEAKENED_DEPLOY_POLICY,
    allow,
    check,
    check_every_policy,
    doc,
    role_policy,
)

POLICY = "iam-arns-name-exact-resources"


def named(resources: object, actions: object = "s3:GetObject", **extra: object) -> list[str]:
    return check(POLICY, T.AWS_ROLE_POLICY, role_policy(allow(actions, resources, **extra)))


@pytest.mark.parametrize(
    ("typ", "props"),
    [
        (T.AWS_ROLE_POLICY, role_policy(iam.deploy_policy(ACCOUNT, "prod", True))),
        (T.AWS_ROLE_POLICY, role_policy(iam.read_only_policy(ACCOUNT, "prod", "b"))),
        (T.AWS_ROLE_POLICY, role_policy(iam.preview_policy(ACCOUNT))),
        # object keys under the job prefixes: 'b/jobs/input/*' stays allowed
        (T.AWS_ROLE_POLICY, role_policy(iam.runtime_policy("b", "jobs/input/", "jobs/output/"))),
        (T.AWS_POLICY, {"name": "boundary", "policy": doc(iam.runtime_boundary("b"))}),
        (T.AWS_BUCKET_POLICY, {"bucket": "b", "policy": doc(iam.bucket_policy("b"))}),
    ],
    ids=["deploy", "read-only", "preview", "runtime", "boundary", "bucket-deny"],
)
def test_the_project_policy_builders_name_exact_resources(typ, props) -> None:
    assert check(POLICY, typ, props) == []


@pytest.mark.parametrize(
    ("arn", "part"),
    [
        ("arn:aws:iam::*:role/rentagpu/prod/rentagpu-prod-runtime", "account '*'"),
        ("arn:aws:iam::12345678901?:user/rentagpu/prod/x", "account '12345678901?'"),
        ("arn:aws:iam::123456789012:role/*", "resource name 'role/*'"),
        ("arn:aws:iam::123456789012:role/rentagpu/*/rentagpu-prod-runtime", "resource name"),
        ("arn:aws:iam::123456789012:policy/rentagpu/prod/rentagpu-prod-runtime-?", "resource name"),
        ("arn:aws:s3:::*", "bucket name '*'"),
        ("arn:aws:s3:::acme-ml-rentagpu-*/jobs/input/*", "bucket name 'acme-ml-rentagpu-*'"),
        ("arn:aws:s3:::acme-ml-rentagpu-pro?", "bucket name 'acme-ml-rentagpu-pro?'"),
        ("arn:aws:sqs:eu-west-1:123456789012:jobs-*", "resource name 'jobs-*'"),
        ("arn:aws:logs:eu-west-1:123456789012:log-group:*", "resource name 'log-group:*'"),
    ],
)
def test_a_wildcard_account_or_resource_name_is_refused(arn, part) -> None:
    (message,) = named(arn, Sid="Broad")
    assert f"'Broad' allows s3:GetObject on {arn}, whose {part}" in message
    assert "name the exact ARN" in message


def test_a_wildcard_in_both_parts_names_both() -> None:
    (message,) = named("arn:aws:iam::*:role/*", "iam:GetRole")
    assert "whose account '*' and resource name 'role/*' are wildcards" in message


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:s3:::acme-ml-rentagpu-prod/*",
        "arn:aws:s3:::acme-ml-rentagpu-prod/jobs/input/*",
        "arn:aws:s3:::acme-ml-rentagpu-prod/jobs/?/x",
        "arn:aws:iam::123456789012:role/rentagpu/prod/rentagpu-prod-runtime",
    ],
)
def test_an_object_key_wildcard_after_a_literal_bucket_and_exact_arns_pass(arn) -> None:
    assert named(arn) == []


def test_each_wildcard_arn_of_a_statement_is_reported() -> None:
    messages = named(["arn:aws:s3:::b/*", "arn:aws:s3:::*/x", "arn:aws:s3:::c*"])
    assert len(messages) == 2
    assert "arn:aws:s3:::*/x" in messages[0] and "arn:aws:s3:::c*" in messages[1]


def test_a_bare_star_resource_is_reported_once_by_iam_no_wildcards() -> None:
    # '*' is iam-no-wildcards' finding; this policy does not say it again
    reported = check_every_policy(T.AWS_ROLE_POLICY, role_policy(allow("s3:GetObject", "*")))
    assert [policy for policy, _ in reported] == ["iam-no-wildcards"]


def test_a_wildcard_arn_in_a_deny_or_a_not_resource_takes_away_and_passes_here() -> None:
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::*/*"}
    assert check(POLICY, T.AWS_ROLE_POLICY, role_policy(iam._document(deny))) == []
    # NotResource excludes what matches; iam-no-wildcards refuses NotResource in an Allow itself
    not_resource = {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::*"}
    assert check(POLICY, T.AWS_ROLE_POLICY, role_policy(iam._document(not_resource))) == []


def test_the_issue_s_object_grant_on_every_bucket_is_refused() -> None:
    messages = check(POLICY, T.AWS_ROLE_POLICY, role_policy(ISSUE_WEAKENED_DEPLOY_POLICY))
    assert len(messages) == 2
    assert "allows s3:*Object on arn:aws:s3:::*/*, whose bucket name '*'" in messages[1]


@pytest.mark.parametrize(
    ("typ", "props"),
    [
        (T.AWS_USER_POLICY, {"name": "p", "user": "u"}),
        (T.AWS_POLICY, {"name": "boundary"}),
        (T.AWS_BUCKET_POLICY, {"bucket": "b"}),
    ],
    ids=["user-policy", "managed-or-boundary", "bucket-policy"],
)
def test_every_kind_of_policy_document_is_read(typ, props) -> None:
    document = allow("s3:GetObject", "arn:aws:s3:::*/jobs/*")
    (message,) = check(POLICY, typ, {**props, "policy": doc(document)})
    assert "bucket name '*'" in message
