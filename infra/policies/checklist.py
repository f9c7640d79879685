"""The checklist: every policy, its level and what it enforces, in the order reports list them.

Shared by the policy pack (`infra/policy_pack`, the real engine's analyzer) and the offline plan
(`python -m infra plan`); each check lives in its own module of this package.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.policies.approvals import check_main_requires_approval
from infra.policies.arn_wildcards import check_arn_names_exact
from infra.policies.escalation import check_no_privilege_escalation
from infra.policies.github_environments import (
    check_prod_deploys_from_main_only,
    check_prod_environment,
)
from infra.policies.isolation import check_environment_isolation
from infra.policies.key_rotation import check_access_key_age
from infra.policies.modal_restricted import check_modal_prod_restricted
from infra.policies.model import PolicyContext, Resource, ResourcePolicy, StackPolicy, Violation
from infra.policies.oidc_trust import check_oidc_trust, check_one_repository
from infra.policies.prod_state import check_prod_state_holds_no_credential
from infra.policies.runtime_principal import check_runtime_cannot_escalate
from infra.policies.secret_inputs import applies_secret_inputs, check_secret_inputs
from infra.policies.wildcards import check_no_wildcards

RESOURCE_POLICIES: tuple[ResourcePolicy, ...] = (
    ResourcePolicy(
        "secret-inputs-are-secret",
        "GitHub Actions secrets and Modal secrets are fed only from values marked secret.",
        "mandatory",
        check_secret_inputs,
        needs_secret_marks=True,
        applies_to=applies_secret_inputs,
    ),
    ResourcePolicy(
        "prod-environment-protected",
        "The prod GitHub environment has required reviewers, prevent_self_review, no admin "
        "bypass and custom deployment branch policies; prod-readonly has the last two.",
        "mandatory",
        check_prod_environment,
    ),
    ResourcePolicy(
        "oidc-trust-pinned",
        "Every web-identity trust pins aud (StringEquals) and sub; the only wildcard is Modal's "
        "container id; GitHub environments are the stack's own or its -readonly one (never for "
        "the deploy role).",
        "mandatory",
        check_oidc_trust,
    ),
    ResourcePolicy(
        "iam-no-wildcards",
        "No IAM or bucket policy statement allows '*' or 'service:*' actions, '*' resources "
        "(beyond listed read-only exceptions) or '*' principals.",
        "mandatory",
        check_no_wildcards,
    ),
    ResourcePolicy(
        "iam-no-privilege-escalation",
        "No IAM or bucket policy Allow grants a privilege-escalation action (iam:Put*Policy, "
        "iam:Attach*Policy, iam:PassRole, iam:CreateAccessKey, sts:AssumeRole*, "
        "s3:PutBucketPolicy...; wildcards and NotAction count) on anything but the exact ARN the "
        "design allows: iam:PutRolePolicy on the stack's runtime role, iam:PutUserPolicy on its "
        "runtime user.",
        "mandatory",
        check_no_privilege_escalation,
    ),
    ResourcePolicy(
        "iam-arns-name-exact-resources",
        "No Allow names an ARN whose account or resource name (an S3 bucket name) is a wildcard; "
        "an S3 object key after a literal bucket may be.",
        "mandatory",
        check_arn_names_exact,
    ),
    ResourcePolicy(
        "runtime-cannot-escalate",
        "The GPU app's role/user is bounded, has only its inline policy, and can never call IAM "
        "or STS.",
        "mandatory",
        check_runtime_cannot_escalate,
    ),
    ResourcePolicy(
        "environment-isolation",
        "Every IAM role/user/policy name and path, GitHub environment and Modal environment "
        "carries this stack's environment and no other.",
        "mandatory",
        check_environment_isolation,
    ),
    ResourcePolicy(
        "modal-prod-environment-restricted",
        "The prod Modal environment is restricted.",
        "mandatory",
        check_modal_prod_restricted,
    ),
    ResourcePolicy(
        "prod-state-holds-no-credential",
        "prod's config and state hold no credential that deploys or writes: no config-supplied "
        "deploy token, no access key.",
        "mandatory",
        check_prod_state_holds_no_credential,
    ),
    ResourcePolicy(
        "main-requires-approval",
        "The owner stack's ruleset on main requires at least one approving review "
        "(rentagpu:requiredApprovals >= 1).",
        "mandatory",
        check_main_requires_approval,
    ),
)

STACK_POLICIES: tuple[StackPolicy, ...] = (
    StackPolicy(
        "github-subjects-name-one-repository",
        "Every GitHub OIDC subject of the stack names the same repository and owner ids.",
        "mandatory",
        check_one_repository,
    ),
    StackPolicy(
        "prod-deploys-from-main-only",
        "The prod and prod-readonly GitHub environments exist and each admits exactly one "
        "deployment branch: main.",
        "mandatory",
        check_prod_deploys_from_main_only,
    ),
    StackPolicy(
        "access-key-rotation",
        "IAM access keys are younger than rentagpu:accessKeyMaxAgeDays.",
        "advisory",
        check_access_key_age,
    ),
)


def run_policies(resources: Sequence[Resource], ctx: PolicyContext) -> list[Violation]:
    """Every resource and stack policy over one stack's resources."""
    violations: list[Violation] = []
    for policy in RESOURCE_POLICIES:
        for resource in resources:
            for message in policy.check(resource, ctx):
                violations.append(Violation(policy.name, resource.name, message, policy.level))
    for stack_policy in STACK_POLICIES:
        for found, message in stack_policy.check(resources, ctx):
            where = found.name if found is not None else "(stack)"
            violations.append(Violation(stack_policy.name, where, message, stack_policy.level))
    return violations
