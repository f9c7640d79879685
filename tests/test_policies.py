"""Each policy of the pack, driven directly with hand-built validation args.

Props are what the engine sends (camelCase for provider resources, Python names for the Modal
hook's dynamic resources; secrets as envelopes, see tests/policies/support.py). Compliant props
come from the project's own builders (infra/iam.py, infra/names.py), so a test fails if the
builders and the checklist ever drift apart.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import MappingProxyType

import pytest
from pulumi_policy import EnforcementLevel

from infra import iam, names
from infra import policies as checklist
from infra.policies import PolicyContext, Resource, check_stacks_share_nothing
from infra.policy_pack.pack import context_from_config, context_from_environment
from tests.policies.support import (
    UNKNOWN_STRING,
    context,
    mark_secret,
    pack_policies,
    secret,
    validate_resource,
    validate_stack,
)

T = checklist  # type tokens live there
ACCOUNT = "123456789012"
GITHUB_PROVIDER = names.oidc_provider_arn(ACCOUNT, names.GITHUB_OIDC_HOST)
MODAL_PROVIDER = names.oidc_provider_arn(ACCOUNT, names.MODAL_OIDC_HOST)
MODAL_SECRET_TYPE = "pulumi-python:dynamic/modal:ModalSecret"
MODAL_ENVIRONMENT_TYPE = "pulumi-python:dynamic/modal:ModalEnvironment"
GENERIC_DYNAMIC = "pulumi-python:dynamic:Resource"


def check(policy_name: str, typ: str, props: dict, ctx: PolicyContext | None = None) -> list[str]:
    policy = pack_policies(ctx or context("prod"))[policy_name]
    return validate_resource(policy, typ, props)


def check_stack(policy_name: str, resources: list, ctx: PolicyContext | None = None) -> list:
    return validate_stack(pack_policies(ctx or context("prod"))[policy_name], resources)


def doc(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# secret-inputs-are-secret
# ---------------------------------------------------------------------------------------------


def github_secret(value: object) -> dict:
    return {
        "repository": "rentagpu",
        "environment": "prod",
        "secretName": "MODAL_TOKEN_ID",
        "value": value,
    }


def modal_secret(values: dict, secret_paths: tuple[str, ...] = ()) -> dict:
    props = {
        "environment_name": "prod",
        "secret_name": names.RUNTIME_SECRET_NAME,
        "values": values,
        "required_keys": sorted(values),
    }
    return mark_secret(props, secret_paths)


CREDENTIALS = {"AWS_ROLE_ARN": "arn:aws:iam::1:role/x", "AWS_REGION": "eu-west-1"}


class TestSecretInputsAreSecret:
    policy = "secret-inputs-are-secret"

    def test_the_policy_runs_in_the_remediation_pass_and_reports_as_mandatory(self) -> None:
        policy = pack_policies(context())[self.policy]
        # REMEDIATE is what makes the engine call `remediate`, where secret marks are visible;
        # the SDK and the engine report its violations as mandatory.
        assert policy.enforcement_level is EnforcementLevel.REMEDIATE
        assert policy.has_remediation()

    @pytest.mark.parametrize(
        ("typ", "props"),
        [
            (T.GITHUB_ENVIRONMENT_SECRET, github_secret(secret("tok-123"))),
            (
                T.GITHUB_REPOSITORY_SECRET,
                {"repository": "r", "secretName": "X", "value": secret("v")},
            ),
            (
                MODAL_SECRET_TYPE,
                modal_secret(CREDENTIALS, ("values.AWS_ROLE_ARN", "values.AWS_REGION")),
            ),
            (MODAL_SECRET_TYPE, modal_secret(CREDENTIALS, ("values",))),
            (GENERIC_DYNAMIC, modal_secret(CREDENTIALS, ("values",))),
            # a secret value still unknown during a preview is still marked secret
            (T.GITHUB_ENVIRONMENT_SECRET, github_secret(secret(UNKNOWN_STRING))),
        ],
    )
    def test_values_marked_secret_pass(self, typ, props) -> None:
        assert check(self.policy, typ, props) == []

    def test_a_github_environment_secret_from_a_plain_value_is_refused_without_echoing_it(
        self,
    ) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT_SECRET, github_secret("tok-123"))
        assert "MODAL_TOKEN_ID" in message and "'prod'" in message
        assert "pulumi.Output.secret" in message
        assert "tok-123" not in message

    def test_a_repository_secret_from_a_plain_value_is_refused(self) -> None:
        props = {"repository": "r", "secretName": "RENTAGPU_DEV_MODAL_READ_TOKEN_ID", "value": "v"}
        (message,) = check(self.policy, T.GITHUB_REPOSITORY_SECRET, props)
        assert "RENTAGPU_DEV_MODAL_READ_TOKEN_ID" in message

    def test_a_modal_secret_with_one_plain_value_names_the_key_not_the_value(self) -> None:
        props = modal_secret(CREDENTIALS, ("values.AWS_REGION",))
        (message,) = check(self.policy, MODAL_SECRET_TYPE, props)
        assert "AWS_ROLE_ARN" in message and "AWS_REGION" not in message.split("for", 1)[1]
        assert "arn:aws:iam::1:role/x" not in message

    def test_an_untyped_dynamic_modal_secret_with_no_marks_is_refused(self) -> None:
        (message,) = check(self.policy, GENERIC_DYNAMIC, modal_secret(CREDENTIALS))
        assert "Modal secret 'rentagpu-runtime'" in message

    def test_without_the_remediation_pass_it_fails_closed(self) -> None:
        # As when someone sets this policy to 'mandatory' in policy config: no marks reach it.
        policy = pack_policies(context())[self.policy]
        reported: list[str] = []
        from tests.policies.support import analysis_args

        args = analysis_args(T.GITHUB_ENVIRONMENT_SECRET, "s", github_secret(secret("x")))
        policy.validate(args, lambda message, _urn=None: reported.append(message))
        assert len(reported) == 1 and "enforcement level 'remediate'" in reported[0]

    def test_other_resources_are_not_its_business(self) -> None:
        assert check(self.policy, T.AWS_BUCKET, {"bucket": "b"}) == []


# ---------------------------------------------------------------------------------------------
# prod-environment-protected
# ---------------------------------------------------------------------------------------------


def environment(name: str = "prod", **overrides: object) -> dict:
    props: dict = {
        "repository": "rentagpu",
        "environment": name,
        "reviewers": [{"users": [101.0, 102.0], "teams": []}],
        "preventSelfReview": True,
        "canAdminsBypass": False,
        "waitTimer": 0.0,
        "deploymentBranchPolicy": {"customBranchPolicies": True, "protectedBranches": False},
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not None}


def readonly_environment(**overrides: object) -> dict:
    """prod-readonly as the program declares it: main only, no admin bypass, no reviewers."""
    return environment("prod-readonly", reviewers=None, preventSelfReview=False, **overrides)


class TestProdEnvironmentProtected:
    policy = "prod-environment-protected"

    def test_a_protected_prod_environment_passes(self) -> None:
        assert check(self.policy, T.GITHUB_ENVIRONMENT, environment()) == []

    def test_a_team_alone_is_a_reviewer(self) -> None:
        props = environment(reviewers=[{"users": [], "teams": [7.0]}])
        assert check(self.policy, T.GITHUB_ENVIRONMENT, props) == []

    def test_dev_needs_no_reviewers(self) -> None:
        props = environment("dev", reviewers=None, preventSelfReview=False)
        assert check(self.policy, T.GITHUB_ENVIRONMENT, props, context("dev")) == []

    @pytest.mark.parametrize("reviewers", [None, [], [{"users": [], "teams": []}]])
    def test_prod_without_reviewers_is_refused(self, reviewers) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, environment(reviewers=reviewers))
        assert "no required reviewers" in message and "rentagpu:reviewers" in message

    def test_self_review_is_refused(self) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, environment(preventSelfReview=False))
        assert "prevent_self_review=True" in message

    @pytest.mark.parametrize("bypass", [True, None])  # None: left to the provider's default, true
    def test_admin_bypass_is_refused(self, bypass) -> None:
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, environment(canAdminsBypass=bypass))
        assert "can_admins_bypass=False" in message

    @pytest.mark.parametrize(
        "branch_policy",
        [None, {"customBranchPolicies": False, "protectedBranches": True}],
    )
    def test_any_branch_may_deploy_is_refused(self, branch_policy) -> None:
        props = environment(deploymentBranchPolicy=branch_policy)
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, props)
        assert "custom_branch_policies=True" in message

    def test_every_gap_is_reported_at_once(self) -> None:
        props = environment(reviewers=[], preventSelfReview=False, canAdminsBypass=True)
        assert len(check(self.policy, T.GITHUB_ENVIRONMENT, props)) == 3

    def test_prod_readonly_needs_no_reviewers(self) -> None:
        assert check(self.policy, T.GITHUB_ENVIRONMENT, readonly_environment()) == []

    @pytest.mark.parametrize("bypass", [True, None])
    def test_prod_readonly_with_admin_bypass_is_refused(self, bypass) -> None:
        props = readonly_environment(canAdminsBypass=bypass)
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, props)
        assert "'prod-readonly'" in message and "can_admins_bypass=False" in message

    @pytest.mark.parametrize(
        "branch_policy",
        [None, {"customBranchPolicies": False, "protectedBranches": True}],
    )
    def test_prod_readonly_open_to_any_branch_is_refused(self, branch_policy) -> None:
        props = readonly_environment(deploymentBranchPolicy=branch_policy)
        (message,) = check(self.policy, T.GITHUB_ENVIRONMENT, props)
        assert "'prod-readonly'" in message and "custom_branch_policies=True" in message


# ---------------------------------------------------------------------------------------------
# prod-deploys-from-main-only (stack)
# ---------------------------------------------------------------------------------------------


def deployment_policy(
    pattern: str, name: str | None = None, environment_name: str = "prod", **extra: str
) -> tuple:
    props = {
        "repository": "rentagpu",
        "environment": environment_name,
        "branchPattern": pattern,
        **extra,
    }
    return (T.GITHUB_DEPLOYMENT_POLICY, name or f"{environment_name}-from-{pattern}", props)


PROD_ENVIRONMENT = (T.GITHUB_ENVIRONMENT, "prod-environment", environment())
READONLY_ENVIRONMENT = (T.GITHUB_ENVIRONMENT, "prod-readonly-environment", readonly_environment())
# prod-readonly, main only: what every prod stack also declares.
READONLY = [READONLY_ENVIRONMENT, deployment_policy("main", environment_name="prod-readonly")]


class TestProdDeploysFromMainOnly:
    policy = "prod-deploys-from-main-only"

    def test_main_only_passes(self) -> None:
        resources = [PROD_ENVIRONMENT, deployment_policy("main"), *READONLY]
        assert check_stack(self.policy, resources) == []

    def test_a_dev_stack_needs_no_prod_environment(self) -> None:
        dev_env = (T.GITHUB_ENVIRONMENT, "dev-environment", environment("dev"))
        assert check_stack(self.policy, [dev_env], context("dev")) == []

    def test_no_deployment_policy_is_refused_at_the_environment(self) -> None:
        ((at, message),) = check_stack(self.policy, [PROD_ENVIRONMENT, *READONLY])
        assert at.endswith("::prod-environment")
        assert "no deployment policy" in message and "branch_pattern='main'" in message

    def test_a_second_branch_is_refused(self) -> None:
        resources = [
            PROD_ENVIRONMENT,
            deployment_policy("main"),
            deployment_policy("release/*"),
            *READONLY,
        ]
        ((_, message),) = check_stack(self.policy, resources)
        assert "'main', 'release/*'" in message

    def test_another_single_branch_or_a_tag_is_refused(self) -> None:
        assert check_stack(self.policy, [PROD_ENVIRONMENT, deployment_policy("develop"), *READONLY])
        tag = (
            T.GITHUB_DEPLOYMENT_POLICY,
            "tag",
            {"repository": "rentagpu", "environment": "prod", "tagPattern": "v*"},
        )
        resources = [PROD_ENVIRONMENT, deployment_policy("main"), tag, *READONLY]
        assert check_stack(self.policy, resources)

    def test_a_prod_stack_without_the_environment_is_refused(self) -> None:
        ((at, message),) = check_stack(self.policy, [deployment_policy("main"), *READONLY])
        assert at is None and "declares no GitHub environment 'prod'" in message

    def test_a_prod_stack_without_prod_readonly_is_refused(self) -> None:
        # prod's drift role trusts environment:prod-readonly; undeclared, any branch could make it.
        resources = [PROD_ENVIRONMENT, deployment_policy("main")]
        ((at, message),) = check_stack(self.policy, resources)
        assert at is None and "declares no GitHub environment 'prod-readonly'" in message

    @pytest.mark.parametrize("extra", [["develop"], ["main", "*"], []])
    def test_prod_readonly_open_to_another_branch_is_refused(self, extra) -> None:
        resources = [
            PROD_ENVIRONMENT,
            deployment_policy("main"),
            READONLY_ENVIRONMENT,
            *(deployment_policy(p, environment_name="prod-readonly") for p in extra),
        ]
        ((at, message),) = check_stack(self.policy, resources)
        assert at.endswith("::prod-readonly-environment")
        assert "GitHub environment 'prod-readonly' must deploy from main only" in message

    def test_a_dev_stack_needs_no_prod_readonly(self) -> None:
        dev = (T.GITHUB_ENVIRONMENT, "dev-environment", environment("dev"))
        dev_main = deployment_policy("main", environment_name="dev")
        assert check_stack(self.policy, [dev, dev_main], context("dev")) == []


# ---------------------------------------------------------------------------------------------
# oidc-trust-pinned
# ---------------------------------------------------------------------------------------------


def role(trust: dict | str, name: str = "rentagpu-prod-deploy") -> dict:
    return {
        "name": name,
        "path": names.iam_path("prod"),
        "assumeRolePolicy": trust if isinstance(trust, str) else doc(trust),
    }


def github_trust_with(
    operator: str, subject: object, audience: object = "sts.amazonaws.com"
) -> dict:
    host = names.GITHUB_OIDC_HOST
    condition: dict = {"StringEquals": {f"{host}:aud": audience}}
    condition.setdefault(operator, {})[f"{host}:sub"] = subject
    return iam._document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": GITHUB_PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }
    )


MODAL_TRUST = iam.modal_runtime_trust(MODAL_PROVIDER, "ac-acme0workspace1", "prod", "app", "fn")


class TestOidcTrustPinned:
    policy = "oidc-trust-pinned"

    @pytest.mark.parametrize(
        ("trust", "name"),
        [
            (
                iam.github_deploy_trust(GITHUB_PROVIDER, "acme-ml", "rentagpu", "prod"),
                names.deploy_role_name("prod"),
            ),
            (
                iam.github_preview_trust(GITHUB_PROVIDER, "acme-ml", "rentagpu"),
                names.preview_role_name("prod"),
            ),
            (
                iam.github_drift_trust(GITHUB_PROVIDER, "acme-ml", "rentagpu", "prod-readonly"),
                names.drift_role_name("prod"),
            ),
            (
                iam.github_drift_trust(GITHUB_PROVIDER, "acme-ml", "rentagpu", None),
                names.drift_role_name("prod"),
            ),
            (MODAL_TRUST, names.runtime_role_name("prod")),
        ],
        ids=["deploy", "preview", "drift-prod-readonly", "drift-main", "modal-runtime"],
    )
    def test_the_project_trust_builders_pass(self, trust, name) -> None:
        assert check(self.policy, T.AWS_ROLE, role(trust, name)) == []

    def test_a_role_without_federation_is_not_its_business(self) -> None:
        trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}}]}
        assert check(self.policy, T.AWS_ROLE, role(trust)) == []

    def test_an_unknown_trust_during_preview_is_left_for_up(self) -> None:
        assert check(self.policy, T.AWS_ROLE, role(UNKNOWN_STRING)) == []

    @pytest.mark.parametrize(
        ("operator", "subject"),
        [
            ("StringLike", "repo:acme-ml/*"),
            ("StringLike", "repo:acme-ml/rentagpu:*"),
            ("StringEquals", "repo:acme-ml/rentagpu:ref:refs/heads/feature"),
            ("StringEquals", "*"),
        ],
    )
    def test_a_github_subject_wider_than_one_environment_is_refused(
        self, operator, subject
    ) -> None:
        messages = check(self.policy, T.AWS_ROLE, role(github_trust_with(operator, subject)))
        assert any("never a wildcard such as repo:OWNER/*" in m for m in messages), messages

    def test_the_prod_drift_role_may_trust_prod_readonly(self) -> None:
        trust = github_trust_with("StringEquals", "repo:acme-ml/rentagpu:environment:prod-readonly")
        assert check(self.policy, T.AWS_ROLE, role(trust, "rentagpu-prod-drift")) == []

    @pytest.mark.parametrize(
        ("operator", "subject"),
        [
            ("StringEquals", "repo:acme-ml/rentagpu:environment:prod-readonly*"),
            ("StringLike", "repo:acme-ml/rentagpu:environment:prod-readonly*"),
            ("StringLike", "repo:acme-ml/rentagpu:environment:prod-*"),
            ("StringEquals", "repo:acme-ml/rentagpu:environment:prod-readonly?"),
        ],
    )
    def test_a_wildcard_readonly_environment_is_refused(self, operator, subject) -> None:
        trust = github_trust_with(operator, subject)
        messages = check(self.policy, T.AWS_ROLE, role(trust, "rentagpu-prod-drift"))
        assert any("never a wildcard such as repo:OWNER/*" in m for m in messages), messages

    @pytest.mark.parametrize(
        ("environment", "stack"),
        [
            ("dev-readonly", "prod"),
            ("prod-readonly", "dev"),
            ("prod-readonly2", "prod"),
            ("prod-staging", "prod"),
            ("readonly", "prod"),
            ("prod-readonly-readonly", "prod"),
        ],
    )
    def test_another_stack_s_or_another_suffix_s_environment_is_refused(
        self, environment, stack
    ) -> None:
        trust = github_trust_with(
            "StringEquals", f"repo:acme-ml/rentagpu:environment:{environment}"
        )
        props = role(trust, f"rentagpu-{stack}-drift")
        (message,) = check(self.policy, T.AWS_ROLE, props, context(stack))
        assert f"trusts environment '{environment}' from the {stack} stack" in message
        assert f"'{stack}'" in message
        if stack == "prod":
            assert "'prod-readonly' for read-only roles" in message

    def test_dev_has_no_readonly_environment_to_trust(self) -> None:
        # the program creates none for dev: GitHub would create it unprotected on first use
        trust = github_trust_with("StringEquals", "repo:acme-ml/rentagpu:environment:dev-readonly")
        props = role(trust, "rentagpu-dev-drift")
        (message,) = check(self.policy, T.AWS_ROLE, props, context("dev"))
        assert "only its own environment ('dev')" in message

    def test_the_deploy_role_never_trusts_the_readonly_environment(self) -> None:
        # prod-readonly has no required reviewers: a deploy role trusting it skips them.
        trust = github_trust_with("StringEquals", "repo:acme-ml/rentagpu:environment:prod-readonly")
        (message,) = check(self.policy, T.AWS_ROLE, role(trust, names.deploy_role_name("prod")))
        assert "assume the deploy role" in message and "'prod'" in message

    def test_a_trust_without_sub_is_refused(self) -> None:
        trust = iam.github_deploy_trust(GITHUB_PROVIDER, "acme-ml", "rentagpu", "prod")
        del trust["Statement"][0]["Condition"]["StringEquals"][f"{names.GITHUB_OIDC_HOST}:sub"]
        (message,) = check(self.policy, T.AWS_ROLE, role(trust))
        assert "no `token.actions.githubusercontent.com:sub` condition" in message

    @pytest.mark.parametrize("operator", ["StringLike", None])
    def test_an_audience_not_pinned_with_string_equals_is_refused(self, operator) -> None:
        trust = iam.github_deploy_trust(GITHUB_PROVIDER, "acme-ml", "rentagpu", "prod")
        condition = trust["Statement"][0]["Condition"]
        audience = condition["StringEquals"].pop(f"{names.GITHUB_OIDC_HOST}:aud")
        if operator:
            condition[operator] = {f"{names.GITHUB_OIDC_HOST}:aud": audience}
        messages = check(self.policy, T.AWS_ROLE, role(trust))
        assert any("does not pin `token.actions.githubusercontent.com:aud`" in m for m in messages)

    def test_another_repository_or_environment_is_refused(self) -> None:
        other_repo = iam.github_deploy_trust(GITHUB_PROVIDER, "someone", "else", "prod")
        (message,) = check(self.policy, T.AWS_ROLE, role(other_repo))
        assert "belongs to 'acme-ml/rentagpu'" in message
        dev_env = iam.github_deploy_trust(GITHUB_PROVIDER, "acme-ml", "rentagpu", "dev")
        (message,) = check(self.policy, T.AWS_ROLE, role(dev_env))
        assert "trusts environment 'dev' from the prod stack" in message

    @pytest.mark.parametrize(
        "subject",
        [
            "modal:workspace_id:ac-acme0workspace1:environment_name:prod:app_name:*"
            ":function_name:fn:container_id:*",
            "modal:workspace_id:ac-acme0workspace1:*",
            "modal:workspace_id:ac-acme0workspace1:environment_name:prod:app_name:app"
            ":function_name:fn:container_id:ta-*",
        ],
    )
    def test_a_modal_subject_with_a_wildcard_beyond_the_container_id_is_refused(
        self, subject
    ) -> None:
        trust = json.loads(json.dumps(MODAL_TRUST))
        trust["Statement"][0]["Condition"]["StringLike"][f"{names.MODAL_OIDC_HOST}:sub"] = subject
        (message,) = check(self.policy, T.AWS_ROLE, role(trust, "rentagpu-prod-runtime"))
        assert "container_id:*` as the only wildcard" in message

    def test_a_role_anyone_may_assume_is_refused(self) -> None:
        trust = {
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ]
        }
        (message,) = check(self.policy, T.AWS_ROLE, role(trust))
        assert "any AWS principal" in message


# ---------------------------------------------------------------------------------------------
# iam-no-wildcards
# ---------------------------------------------------------------------------------------------


def role_policy(document: dict, role_name: str = "rentagpu-prod-deploy") -> dict:
    return {"name": "deploy-prod", "role": role_name, "policy": doc(document)}


def allow(actions: object, resources: object, **extra: object) -> dict:
    return iam._document({"Effect": "Allow", "Action": actions, "Resource": resources, **extra})


class TestIamNoWildcards:
    policy = "iam-no-wildcards"

    @pytest.mark.parametrize(
        ("typ", "props"),
        [
            (T.AWS_ROLE_POLICY, role_policy(iam.deploy_policy(ACCOUNT, "prod", "b", True))),
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
        assert dict(checklist.RESOURCE_WILDCARD_EXCEPTIONS) == {}

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
            checklist,
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


# ---------------------------------------------------------------------------------------------
# runtime-cannot-escalate
# ---------------------------------------------------------------------------------------------

RUNTIME_ROLE = names.runtime_role_name("prod")


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
        props = role_policy(iam.deploy_policy(ACCOUNT, "prod", "b", False))
        assert check(self.policy, T.AWS_ROLE_POLICY, props) == []


# ---------------------------------------------------------------------------------------------
# environment-isolation
# ---------------------------------------------------------------------------------------------


class TestEnvironmentIsolation:
    policy = "environment-isolation"

    @pytest.mark.parametrize(
        ("typ", "props"),
        [
            (T.AWS_ROLE, {"name": "rentagpu-prod-deploy", "path": "/rentagpu/prod/"}),
            (T.AWS_POLICY, {"name": "rentagpu-prod-runtime-boundary", "path": "/rentagpu/prod/"}),
            (T.GITHUB_ENVIRONMENT_SECRET, {"environment": "prod", "secretName": "X"}),
            (T.GITHUB_ENVIRONMENT, {"environment": "prod-readonly"}),
            (
                T.GITHUB_ENVIRONMENT_SECRET,
                {"environment": "prod-readonly", "secretName": "MODAL_READ_TOKEN_ID"},
            ),
            (
                T.GITHUB_ENVIRONMENT_VARIABLE,
                {"environment": "prod-readonly", "variableName": "AWS_DRIFT_ROLE_ARN"},
            ),
            (T.GITHUB_DEPLOYMENT_POLICY, {"environment": "prod-readonly", "branchPattern": "main"}),
            (MODAL_ENVIRONMENT_TYPE, {"environment_name": "prod", "restricted": True}),
            (MODAL_SECRET_TYPE, {"environment_name": "prod", "secret_name": "s", "values": {}}),
        ],
    )
    def test_names_that_carry_the_stack_environment_pass(self, typ, props) -> None:
        assert check(self.policy, typ, props) == []

    @pytest.mark.parametrize(
        ("typ", "props", "shown"),
        [
            (
                T.AWS_ROLE,
                {"name": "rentagpu-dev-deploy", "path": "/rentagpu/prod/"},
                "'rentagpu-dev-deploy'",
            ),
            (
                T.AWS_ROLE,
                {"name": "rentagpu-deploy", "path": "/rentagpu/prod/"},
                "'rentagpu-deploy'",
            ),
            (T.AWS_ROLE, {"name": "rentagpu-prod-deploy"}, "path '/'"),
            (
                T.AWS_ROLE,
                {"name": "rentagpu-production-deploy", "path": "/rentagpu/prod/"},
                "production",
            ),
            (T.GITHUB_ENVIRONMENT, {"environment": "dev"}, "GitHub environment 'dev'"),
            (
                T.GITHUB_ENVIRONMENT,
                {"environment": "dev-readonly"},
                "GitHub environment 'dev-readonly'",
            ),
            (MODAL_ENVIRONMENT_TYPE, {"environment_name": "main", "restricted": True}, "'main'"),
            (
                GENERIC_DYNAMIC,
                {"environment_name": "dev", "secret_name": "s", "values": {}},
                "'dev'",
            ),
        ],
    )
    def test_names_of_another_or_no_environment_are_refused(self, typ, props, shown) -> None:
        (message,) = check(self.policy, typ, props)
        assert shown in message and "must carry 'prod'" in message

    def test_a_role_without_an_explicit_name_is_refused(self) -> None:
        (message,) = check(self.policy, T.AWS_ROLE, {"path": "/rentagpu/prod/"})
        assert "no explicit IAM role name" in message

    @pytest.mark.parametrize(
        "typ", [T.GITHUB_ENVIRONMENT, T.GITHUB_ENVIRONMENT_SECRET, T.GITHUB_DEPLOYMENT_POLICY]
    )
    def test_prod_readonly_in_the_dev_stack_is_refused(self, typ) -> None:
        (message,) = check(self.policy, typ, {"environment": "prod-readonly"}, context("dev"))
        assert "GitHub environment 'prod-readonly'" in message and "must carry 'dev'" in message


# ---------------------------------------------------------------------------------------------
# modal-prod-environment-restricted
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# access-key-rotation (advisory, stack level: createDate is an output)
# ---------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def access_key(created: str | None, name: str = "prod-runtime-key-1") -> tuple:
    props = {"user": "rentagpu-prod-runtime", "secret": secret("s3cr3t"), "status": "Active"}
    if created is not None:
        props["createDate"] = created
    return (T.AWS_ACCESS_KEY, name, props)


class TestAccessKeyRotation:
    policy = "access-key-rotation"

    def test_it_is_advisory(self) -> None:
        assert pack_policies(context())[self.policy].enforcement_level is EnforcementLevel.ADVISORY

    @pytest.mark.parametrize("created", ["2026-10-01T00:00:00Z", None, UNKNOWN_STRING])
    def test_young_or_not_yet_created_keys_pass(self, created) -> None:
        assert check_stack(self.policy, [access_key(created)], context(now=NOW)) == []

    def test_a_key_older_than_the_default_90_days_is_reported(self) -> None:
        ((at, message),) = check_stack(
            self.policy, [access_key("2026-08-01T09:30:00Z")], context(now=NOW)
        )
        assert at.endswith("::prod-runtime-key-1")
        assert "2026-08-01, 119 days ago" in message and "rentagpu:accessKeySerial" in message
        assert "s3cr3t" not in message

    def test_the_configured_age_from_stack_config_applies(self) -> None:
        config = {"rentagpu:environment": "prod", "rentagpu:accessKeyMaxAgeDays": "30"}
        ctx = PolicyContext(**{**context_from_config(config, "prod").__dict__, "now": NOW})
        assert ctx.access_key_max_age_days == 30
        ((_, message),) = check_stack(self.policy, [access_key("2026-10-01T00:00:00Z")], ctx)
        assert "(30)" in message


def test_the_pack_reads_its_context_from_the_engine_environment() -> None:
    environ = {
        "PULUMI_STACK": "prod",
        "PULUMI_CONFIG": json.dumps(
            {
                "rentagpu:githubOwner": "acme-ml",
                "rentagpu:githubRepository": "rentagpu",
                "rentagpu:accessKeyMaxAgeDays": "45",
            }
        ),
    }
    ctx = context_from_environment(environ)
    assert (ctx.environment, ctx.github_repository, ctx.access_key_max_age_days) == (
        "prod",
        "acme-ml/rentagpu",
        45,
    )
    broken = {"PULUMI_STACK": "dev", "PULUMI_CONFIG": '{"rentagpu:accessKeyMaxAgeDays": "soon"}'}
    assert context_from_environment(broken).access_key_max_age_days == 90
    assert context_from_environment(broken).environment == "dev"


# ---------------------------------------------------------------------------------------------
# stacks-share-nothing (offline, across stacks)
# ---------------------------------------------------------------------------------------------


def r(typ: str, logical_name: str, **props: object) -> Resource:
    return Resource(typ, logical_name, props)


class TestStacksShareNothing:
    def test_per_environment_names_do_not_collide(self) -> None:
        stacks = {
            env: [
                r(T.AWS_ROLE, f"{env}-deploy-role", name=names.deploy_role_name(env)),
                r(
                    MODAL_SECRET_TYPE,
                    f"{env}-secret",
                    environment_name=env,
                    secret_name="rentagpu-runtime",
                    values={},
                ),
                r(
                    T.GITHUB_ENVIRONMENT,
                    f"{env}-environment",
                    repository="rentagpu",
                    environment=env,
                ),
            ]
            for env in ("dev", "prod")
        }
        assert check_stacks_share_nothing(stacks) == []

    def test_a_shared_role_is_reported_with_both_declarations(self) -> None:
        stacks = {
            "dev": [r(T.AWS_ROLE, "dev-deploy-role", name="rentagpu-deploy")],
            "prod": [r(T.AWS_ROLE, "prod-deploy-role", name="rentagpu-deploy")],
        }
        (violation,) = check_stacks_share_nothing(stacks)
        assert violation.policy == "stacks-share-nothing" and violation.level == "mandatory"
        assert violation.resource == "dev:dev-deploy-role / prod:prod-deploy-role"
        assert "IAM role 'rentagpu-deploy'" in violation.message

    def test_a_shared_modal_secret_environment_or_account_singleton_is_reported(self) -> None:
        def both(resource: Resource) -> dict:
            return {"dev": [resource], "prod": [resource]}

        shared_secret = r(GENERIC_DYNAMIC, "s", environment_name="main", secret_name="x", values={})
        assert "Modal secret 'main/x'" in check_stacks_share_nothing(both(shared_secret))[0].message
        provider = r(
            T.AWS_OIDC_PROVIDER,
            "github-actions-oidc",
            url="https://token.actions.githubusercontent.com",
        )
        assert "ownsAccountSingletons" in check_stacks_share_nothing(both(provider))[0].message
        github_env = r(T.GITHUB_ENVIRONMENT, "e", repository="rentagpu", environment="prod")
        assert check_stacks_share_nothing(both(github_env))
