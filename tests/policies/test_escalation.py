"""The policy iam-no-privilege-escalation (infra/policies/escalation.py), driven through the pack
with hand-built validation args (see tests/policies/support.py).

Every test name here carries "escalation": `pytest -k escalat` selects them.
"""

from __future__ import annotations

import pytest

from infra.core import names
from infra.core import resource_types as T
from infra.policies.escalation import ESCALATION_ACTIONS, covered
from infra.stages.aws import iam
from tests.policies.support import (
    ACCOUNT,
    ISSUE_WEAKENED_DEPLOY_POLICY,
    ISSUE_WEAKENED_GRANTS,
    allow,
    check,
    check_every_policy,
    context,
    doc,
    role_policy,
)

POLICY = "iam-no-privilege-escalation"
RUNTIME_ROLE = names.iam_arn(ACCOUNT, "prod", "role", names.role_name("prod", "runtime"))
RUNTIME_USER = names.iam_arn(ACCOUNT, "prod", "user", names.runtime_user_name("prod"))
DEPLOY_ROLE = names.iam_arn(ACCOUNT, "prod", "role", names.role_name("prod", "deploy"))


def escalations(document: dict, environment: str | None = "prod") -> list[str]:
    return check(POLICY, T.AWS_ROLE_POLICY, role_policy(document), context(environment))


def test_escalation_in_the_issue_s_deploy_policy_is_reported_for_each_of_its_four_grants() -> None:
    reported = check_every_policy(T.AWS_ROLE_POLICY, role_policy(ISSUE_WEAKENED_DEPLOY_POLICY))
    by_policy: dict[str, list[str]] = {}
    for policy, message in reported:
        by_policy.setdefault(policy, []).append(message)
    # the three IAM/STS grants are escalations; s3:*Object is none, but names every bucket
    escalating = by_policy.pop(POLICY)
    for grant in ("iam:Put*", "iam:Pass*", "sts:Assume*"):
        (message,) = [m for m in escalating if f"allows {grant}," in m]
        assert "on arn:aws:iam::*:role/*" in message
    assert "iam:PassRole" in " ".join(escalating) and "sts:AssumeRole" in " ".join(escalating)
    named = by_policy.pop("iam-arns-name-exact-resources")
    assert any("s3:*Object on arn:aws:s3:::*/*" in m and "bucket name '*'" in m for m in named)
    assert by_policy == {}  # the old '*'-only check (iam-no-wildcards) still sees nothing
    everything = " ".join(message for _, message in reported)
    assert all(grant in everything for grant in ISSUE_WEAKENED_GRANTS)


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("access_key_mode", [False, True])
def test_escalation_check_passes_the_project_s_own_deploy_policy(
    environment, access_key_mode
) -> None:
    document = iam.deploy_policy(ACCOUNT, environment, access_key_mode)
    granted = {a for s in document["Statement"] for a in s["Action"]}
    assert "iam:PutRolePolicy" in granted  # the allowance is really exercised
    assert ("iam:PutUserPolicy" in granted) is access_key_mode
    assert escalations(document, environment) == []


@pytest.mark.parametrize(
    ("action", "arn"), [("iam:PutRolePolicy", RUNTIME_ROLE), ("iam:PutUserPolicy", RUNTIME_USER)]
)
def test_escalation_allowance_is_the_exact_runtime_principal_only(action, arn) -> None:
    assert escalations(allow(action, arn)) == []
    assert escalations(allow(action.upper(), arn)) == []  # IAM ignores the case of actions
    others = [
        DEPLOY_ROLE,  # another role of the stack: CI's own
        RUNTIME_USER if arn == RUNTIME_ROLE else RUNTIME_ROLE,  # the runtime's other kind
        arn.replace(ACCOUNT, "*"),  # any account
        arn.replace("/rentagpu/prod/", "/"),  # outside the stack's path
        arn.replace("/rentagpu/prod/", "/rentagpu/dev/"),  # another stack's path
        arn.replace("prod-runtime", "dev-runtime").replace("/prod/", "/dev/"),  # dev's principal
        arn + "*",  # a pattern that also matches other names
    ]
    for other in others:
        (message,) = escalations(allow(action, other))
        assert f"allows {action} on {other}" in message
    # one wrong ARN next to the right one is enough
    assert escalations(allow(action, [arn, DEPLOY_ROLE]))


def test_escalation_put_role_policy_on_the_deploy_role_itself_is_reported() -> None:
    (message,) = escalations(allow("iam:PutRolePolicy", DEPLOY_ROLE, Sid="SelfService"))
    assert "'SelfService' allows iam:PutRolePolicy on " + DEPLOY_ROLE in message
    assert "the design allows only iam:PutRolePolicy on arn:aws:iam::<account>:role/" in message


@pytest.mark.parametrize(
    "action",
    [
        "iam:AttachRolePolicy",
        "iam:PutRolePermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary",
        "iam:UpdateAssumeRolePolicy",
        "iam:PassRole",
        "sts:AssumeRole",
        "iam:PutUserPolicy",  # a user action on a role ARN is not the user allowance
    ],
)
def test_escalation_other_actions_on_the_runtime_role_itself_are_reported(action) -> None:
    # Only its inline policy may change: no attached policy, no new boundary, no new trust.
    (message,) = escalations(allow(action, RUNTIME_ROLE))
    assert f"allows {action} on {RUNTIME_ROLE}" in message


@pytest.mark.parametrize("action", sorted(ESCALATION_ACTIONS))
def test_escalation_every_listed_action_is_refused_on_any_other_arn(action) -> None:
    (message,) = escalations(allow(action, "arn:aws:s3:::acme-ml-rentagpu-prod"))
    assert f"allows {action} on" in message


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("iam:Put*", "iam:PutRolePermissionsBoundary"),
        ("iam:put*policy", "iam:PutGroupPolicy"),
        ("iam:Attach*", "iam:AttachUserPolicy"),
        ("iam:*", "iam:CreateAccessKey"),
        ("iam:Pass*", "iam:PassRole"),
        ("IAM:PASSROLE", "iam:PassRole"),
        ("iam:Put?olePolicy", "iam:PutRolePolicy"),
        ("sts:Assume*", "sts:AssumeRoleWithWebIdentity"),
        ("s3:*", "s3:PutBucketPolicy"),
        ("s3:Put*Acl", "s3:PutObjectAcl"),
        ("*", "lambda:UpdateFunctionCode"),
    ],
)
def test_escalation_action_wildcards_count_for_what_they_match(pattern, expected) -> None:
    assert expected in covered([pattern])
    (message,) = escalations(allow(pattern, DEPLOY_ROLE))
    said = f"allows {pattern} on" if pattern.lower() == expected.lower() else f"allows {pattern},"
    assert said in message and expected.lower() in message.lower()


@pytest.mark.parametrize(
    "pattern", ["iam:Get*", "iam:GetRolePolicy", "s3:*Object", "sts:GetCallerIdentity", "iam:Pu"]
)
def test_escalation_patterns_that_match_no_escalation_action_pass(pattern) -> None:
    assert covered([pattern]) == []
    assert escalations(allow(pattern, DEPLOY_ROLE)) == []


def test_escalation_list_covers_what_the_issue_names() -> None:
    # issue 10: "iam:Put*Policy, iam:Attach*, iam:CreateAccessKey, iam:CreatePolicyVersion,
    # iam:PassRole, iam:UpdateAssumeRolePolicy, sts:AssumeRole*, s3:PutBucketPolicy"
    for pattern in (
        "iam:Put*Policy",
        "iam:Attach*",
        "iam:CreateAccessKey",
        "iam:CreatePolicyVersion",
        "iam:SetDefaultPolicyVersion",
        "iam:PassRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:*PermissionsBoundary",
        "iam:CreateLoginProfile",
        "iam:UpdateLoginProfile",
        "iam:AddUserToGroup",
        "sts:AssumeRole*",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutBucketAcl",
    ):
        assert covered([pattern]), pattern


def test_escalation_through_not_action_or_not_resource_is_reported() -> None:
    # NotAction s3:* allows every IAM action: all of them escalations
    not_action = {"Effect": "Allow", "NotAction": "s3:*", "Resource": RUNTIME_ROLE}
    (message,) = escalations({"Version": "2012-10-17", "Statement": [not_action]})
    assert "allows NotAction ['s3:*'], which grants iam:PutUserPolicy" in message
    assert "iam:PassRole" in message and "sts:AssumeRole" in message
    assert "iam:PutRolePolicy," not in message  # the one it may have on the runtime role
    # a NotAction that spares every escalation action grants none of them (iam-no-wildcards still
    # refuses the NotAction itself)
    spared = {**not_action, "NotAction": ["iam:*", "sts:*", "s3:*", "lambda:*", "glue:*"]}
    assert escalations({"Version": "2012-10-17", "Statement": [spared]}) == []
    # NotResource reaches every other ARN, so even the allowed action is not on the allowed ARN
    not_resource = {"Effect": "Allow", "Action": "iam:PutRolePolicy", "NotResource": DEPLOY_ROLE}
    (message,) = escalations({"Version": "2012-10-17", "Statement": [not_resource]})
    assert f"on every resource but ['{DEPLOY_ROLE}']" in message


def test_escalation_in_a_deny_is_no_grant() -> None:
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*"}
    assert escalations({"Version": "2012-10-17", "Statement": [deny]}) == []


@pytest.mark.parametrize(
    ("typ", "props"),
    [
        (T.AWS_USER_POLICY, {"name": "p", "user": "u"}),
        (T.AWS_GROUP_POLICY, {"name": "p", "group": "g"}),
        (T.AWS_POLICY, {"name": "rentagpu-prod-runtime-boundary"}),
        (T.AWS_BUCKET_POLICY, {"bucket": "b"}),
    ],
    ids=["user-policy", "group-policy", "managed-or-boundary", "bucket-policy"],
)
def test_escalation_is_found_in_every_kind_of_policy_document(typ, props) -> None:
    document = allow(["s3:GetObject", "s3:PutBucketPolicy"], "arn:aws:s3:::b", Sid="Grab")
    (message,) = check(POLICY, typ, {**props, "policy": doc(document)})
    assert "'Grab' allows s3:PutBucketPolicy on arn:aws:s3:::b" in message


def test_escalation_in_a_role_s_inline_policies_input_is_found() -> None:
    role = {
        "name": "rentagpu-prod-deploy",
        "inlinePolicies": [{"name": "p", "policy": doc(allow("iam:PassRole", DEPLOY_ROLE))}],
    }
    (message,) = check(POLICY, T.AWS_ROLE, role)
    assert "inline policy 'p' of role 'rentagpu-prod-deploy'" in message


def test_escalation_allowance_follows_the_stack_s_environment() -> None:
    prod_grant = allow("iam:PutRolePolicy", RUNTIME_ROLE)
    assert escalations(prod_grant, "prod") == []
    (message,) = escalations(prod_grant, "dev")  # dev's stack may not touch prod's runtime
    assert "role/rentagpu/dev/rentagpu-dev-runtime" in message
    (message,) = escalations(prod_grant, None)
    assert "environment is unknown (rentagpu:environment)" in message
