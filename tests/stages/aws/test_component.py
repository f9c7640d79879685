"""Stage 2 as rendered: trust policies pinned exactly, least privilege, parliament-clean."""

from __future__ import annotations

import json
import warnings

import pytest

from infra.core import names
from infra.tools.offline import MOCK_ACCOUNT_ID, RecordingMocks, render, stable_id
from tests.stacks import stack_config

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
REPO = "acme-ml/rentagpu"
# What the mocked GitHub answers for acme-ml/rentagpu (infra/tools/offline.py MockGitHub).
IDS = (int(stable_id("owner", "acme-ml")), int(stable_id("repository", REPO)))


def subject(context: str) -> str:
    return names.github_subject(*IDS, context)


# prod has no PR preview role: a live preview from PR code would decrypt its config
PURPOSES = {
    "dev": ("deploy", "preview", "drift", "runtime"),
    "prod": ("deploy", "preview", "drift", "runtime"),
}


def role(rendering, purpose: str) -> dict:
    found = rendering.one(ROLE, f"{rendering.stack}-{purpose}-role")
    return {**found.inputs, "trust": json.loads(found.inputs["assumeRolePolicy"])}


def role_policy(rendering, purpose: str) -> dict:
    name = f"{rendering.stack}-{purpose}-role-{'s3' if purpose == 'runtime' else 'policy'}"
    return json.loads(rendering.one(ROLE_POLICY, name).inputs["policy"])


def only_statement(document: dict) -> dict:
    assert len(document["Statement"]) == 1
    return document["Statement"][0]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deploy_role_trusts_only_this_repos_environment(renderings, stack) -> None:
    trust = only_statement(role(renderings[stack], "deploy")["trust"])
    assert trust["Effect"] == "Allow"
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {
        "Federated": f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": subject(f"environment:{stack}"),
        }
    }


@pytest.mark.parametrize(
    ("stack", "purpose", "subject"),
    [
        ("dev", "preview", subject("pull_request")),
        ("dev", "drift", subject("ref:refs/heads/main")),
        # prod's read credentials can decrypt its config (Modal deploy token included), so only
        # jobs in the main-only environment prod-readonly may use them
        ("prod", "drift", subject("environment:prod-readonly")),
    ],
)
def test_read_only_roles_trust_exactly_one_subject(renderings, stack, purpose, subject) -> None:
    trust = only_statement(role(renderings[stack], purpose)["trust"])
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": subject,
        }
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_runtime_role_trusts_one_modal_function_any_container(renderings, stack) -> None:
    trust = only_statement(role(renderings[stack], "runtime")["trust"])
    assert trust["Principal"]["Federated"].endswith(":oidc-provider/oidc.modal.com")
    assert trust["Condition"] == {
        "StringEquals": {"oidc.modal.com:aud": "oidc.modal.com"},
        "StringLike": {
            "oidc.modal.com:sub": (
                f"modal:workspace_id:ac-acme0workspace1:environment_name:{stack}"
                ":app_name:rentagpu-executor:function_name:run_gpu_job:container_id:*"
            )
        },
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_wildcard_in_owner_repo_or_environment_of_any_subject(renderings, stack) -> None:
    for purpose in PURPOSES[stack]:
        condition = only_statement(role(renderings[stack], purpose)["trust"])["Condition"]
        subjects = [
            v for block in condition.values() for k, v in block.items() if k.endswith(":sub")
        ]
        assert len(subjects) == 1
        subject = subjects[0]
        if purpose == "runtime":
            assert subject.count("*") == 1 and subject.endswith(":container_id:*")
        else:
            assert "*" not in subject and "?" not in subject
            assert subject.startswith(names.github_subject(*IDS, ""))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_runtime_policy_is_exactly_the_apps_s3_calls(renderings, stack) -> None:
    bucket = f"arn:aws:s3:::acme-ml-rentagpu-{stack}"
    statements = {s["Sid"]: s for s in role_policy(renderings[stack], "runtime")["Statement"]}
    assert statements == {
        "ListJobPrefixes": {
            "Sid": "ListJobPrefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket],
            "Condition": {"StringLike": {"s3:prefix": ["jobs/input/*", "jobs/output/*"]}},
        },
        "ReadInputs": {
            "Sid": "ReadInputs",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{bucket}/jobs/input/*"],
        },
        "CreateOutputsOnce": {
            "Sid": "CreateOutputsOnce",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [f"{bucket}/jobs/output/*"],
            # AWS's documented form: a PutObject without If-None-Match (an overwrite) is denied.
            "Condition": {"Null": {"s3:if-none-match": "false"}},
        },
    }
    for statement in statements.values():
        assert all("*" not in action and "Delete" not in action for action in statement["Action"])
        assert "*" not in statement["Resource"]


def test_runtime_role_sits_under_a_boundary_it_cannot_leave(renderings) -> None:
    rendering = renderings["prod"]
    runtime = role(rendering, "runtime")
    boundary = rendering.one(POLICY, "prod-runtime-boundary")
    assert runtime["permissionsBoundary"] == (
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:policy/rentagpu/prod/rentagpu-prod-runtime-boundary"
    )
    statements = json.loads(boundary.inputs["policy"])["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}
    # The ceiling itself is create-only: no rewrite of the inline policy can allow an overwrite.
    puts = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert [s["Action"] for s in puts] == [["s3:PutObject"]]
    assert puts[0]["Condition"] == {"Null": {"s3:if-none-match": "false"}}


def test_every_runtime_put_requires_if_none_match_in_both_auth_modes(renderings) -> None:
    """moto ignores conditions, so write-once is asserted on every rendered runtime document: no
    Allow of s3:PutObject (or a wildcard covering it) without the create-only condition."""
    access_key = render(stack_config("dev", awsAuth="access-key"))
    documents = [
        role_policy(renderings["dev"], "runtime"),
        role_policy(renderings["prod"], "runtime"),
        json.loads(access_key.one("aws:iam/userPolicy:UserPolicy").inputs["policy"]),
        *(
            json.loads(r.one(POLICY, f"{r.stack}-runtime-boundary").inputs["policy"])
            for r in (renderings["dev"], renderings["prod"], access_key)
        ),
    ]
    puts = [
        statement
        for document in documents
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
        and any(a in ("s3:PutObject", "s3:Put*", "s3:*", "*") for a in statement["Action"])
    ]
    assert len(puts) == len(documents)  # one create-only statement in each, no other put
    assert all(p["Condition"] == {"Null": {"s3:if-none-match": "false"}} for p in puts)


def test_the_create_only_condition_key_is_one_aws_defines_for_put_object() -> None:
    """parliament never checks keys under `Null`, so a typo there would pass it silently: check
    the key against parliament's copy of AWS's service reference for s3:PutObject."""
    from infra.stages.aws.iam import IF_NONE_MATCH_KEY

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from parliament import iam_definition

    s3 = next(service for service in iam_definition if service["prefix"] == "s3")
    (put,) = [p for p in s3["privileges"] if p["privilege"] == "PutObject"]
    keys = {key for resource in put["resource_types"] for key in resource["condition_keys"]}
    assert IF_NONE_MATCH_KEY in keys
    assert "s3:if-none-matchx" not in keys  # the lookup itself can tell a typo apart


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_role_lives_under_the_stacks_own_path_and_name(renderings, stack) -> None:
    roles = renderings[stack].of_type(ROLE)
    assert sorted(r.inputs["name"] for r in roles) == sorted(
        f"rentagpu-{stack}-{p}" for p in PURPOSES[stack]
    )
    assert {r.inputs["path"] for r in roles} == {f"/rentagpu/{stack}/"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deploy_policy_touches_only_this_stacks_resources(renderings, stack) -> None:
    allowed_prefixes = (
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/rentagpu/{stack}/",
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:user/rentagpu/{stack}/",
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:policy/rentagpu/{stack}/",
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/",
        f"arn:aws:s3:::acme-ml-rentagpu-{stack}",
    )
    document = role_policy(renderings[stack], "deploy")
    writes = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            assert resource.startswith(allowed_prefixes), resource
        for action in statement["Action"]:
            assert "*" not in action.split(":")[1] or action == "s3:GetBucket*", action
            if not action.split(":")[1].startswith(("Get", "List")):
                writes.add((action, tuple(statement["Resource"])))
    runtime_role = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/rentagpu/{stack}/rentagpu-{stack}-runtime"
    iam_writes = {
        resource
        for action, resources in writes
        if action.startswith("iam:")
        for resource in resources
    }
    # The deploy role can change the runtime role's inline policy and nothing else in IAM: not
    # itself, not the preview/drift roles, not the boundary, not the OIDC providers.
    assert iam_writes == {runtime_role}
    iam_write_actions = {action for action, _ in writes if action.startswith("iam:")}
    assert iam_write_actions == {"iam:DeleteRolePolicy", "iam:PutRolePolicy"}
    # Nothing of the bucket: its settings and policy are the admin's (governance).
    assert not any(action.startswith("s3:") for action, _ in writes)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_preview_role_pull_requests_assume_reads_nothing_of_the_stack(renderings, stack):
    """Any branch can open a pull request and assume it: it can only look up the OIDC providers
    (what a preview's lookups need), never a role, user, policy or the bucket."""
    document = role_policy(renderings[stack], "preview")
    assert [(s["Action"], s["Resource"]) for s in document["Statement"]] == [
        (
            ["iam:GetOpenIDConnectProvider"],
            [
                f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/token.actions.githubusercontent.com",
                f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/oidc.modal.com",
            ],
        )
    ]
    trust = only_statement(role(renderings[stack], "preview")["trust"])
    assert trust["Condition"]["StringEquals"][
        "token.actions.githubusercontent.com:sub"
    ] == names.github_subject(*IDS, "pull_request")


def test_the_deploy_role_can_never_create_or_re_trust_a_role(renderings) -> None:
    """A role that could create the runtime role, or rewrite its trust, could name itself in it
    and read the bucket through it; the runtime role's trust is the admin's."""
    for stack in ("dev", "prod"):
        actions = {
            a for s in role_policy(renderings[stack], "deploy")["Statement"] for a in s["Action"]
        }
        assert not actions & {
            "iam:CreateRole",
            "iam:DeleteRole",
            "iam:UpdateAssumeRolePolicy",
            "iam:PassRole",
            "iam:AttachRolePolicy",
            "iam:PutRolePermissionsBoundary",
            "iam:DeleteRolePermissionsBoundary",
        }


def test_read_only_roles_cannot_write(renderings) -> None:
    for stack, purpose in (("dev", "preview"), ("dev", "drift"), ("prod", "drift")):
        for statement in role_policy(renderings[stack], purpose)["Statement"]:
            for action in statement["Action"]:
                assert action.split(":")[1].startswith(("Get", "List")), action


def test_owner_stack_creates_the_oidc_providers_and_the_other_looks_them_up() -> None:
    prod_mocks, dev_mocks = RecordingMocks(), RecordingMocks()
    prod = render(stack_config("prod"), prod_mocks)
    dev = render(stack_config("dev"), dev_mocks)
    providers = {p.inputs["url"]: p.inputs["clientIdLists"] for p in prod.of_type(OIDC)}
    assert providers == {
        "https://token.actions.githubusercontent.com": ["sts.amazonaws.com"],
        "https://oidc.modal.com": ["oidc.modal.com"],
    }
    assert dev.of_type(OIDC) == []
    lookups = sorted(
        a["arn"] for t, a, _ in dev_mocks.calls if t.endswith("getOpenIdConnectProvider")
    )
    assert lookups == [
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/oidc.modal.com",
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/token.actions.githubusercontent.com",
    ]
    assert not [t for t, _, _ in prod_mocks.calls if t.endswith("getOpenIdConnectProvider")]


def test_bucket_is_private_encrypted_versioned_and_tls_only(renderings) -> None:
    rendering = renderings["dev"]
    block = rendering.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    encryption = rendering.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert (
        encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
        == "AES256"
    )
    versioning = rendering.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    policy = json.loads(rendering.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    deny = only_statement(policy)
    assert deny["Effect"] == "Deny" and deny["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }


def test_access_key_mode_uses_a_bounded_user_whose_key_rotates_by_serial() -> None:
    rendering = render(stack_config("dev", awsAuth="access-key", accessKeySerial=3))
    assert "dev-runtime-role" not in [r.name for r in rendering.of_type(ROLE)]
    user = rendering.one("aws:iam/user:User").inputs
    assert user["name"] == "rentagpu-dev-runtime" and user["path"] == "/rentagpu/dev/"
    assert user["permissionsBoundary"].endswith(
        ":policy/rentagpu/dev/rentagpu-dev-runtime-boundary"
    )
    user_policy = json.loads(rendering.one("aws:iam/userPolicy:UserPolicy").inputs["policy"])
    assert {s["Sid"] for s in user_policy["Statement"]} == {
        "ListJobPrefixes",
        "ReadInputs",
        "CreateOutputsOnce",
    }
    keys = rendering.of_type("aws:iam/accessKey:AccessKey")
    assert [k.name for k in keys] == ["dev-runtime-key-3"]
    deploy = role_policy(rendering, "deploy")
    user_actions = {
        (a, r)
        for s in deploy["Statement"]
        if s["Sid"] == "ManageRuntimeUserPolicy"
        for a in s["Action"]
        for r in s["Resource"]
    }
    user = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:user/rentagpu/dev/rentagpu-dev-runtime"
    # CI changes the user's inline policy (under the boundary) but never mints its keys: a
    # deploy that could create a key could hand itself the runtime's access. Keys are the admin's.
    assert user_actions == {
        ("iam:DeleteUserPolicy", user),
        ("iam:GetUserPolicy", user),
        ("iam:PutUserPolicy", user),
    }
    every_action = {a for s in deploy["Statement"] for a in s["Action"]}
    assert not every_action & {"iam:CreateAccessKey", "iam:CreateUser", "iam:UpdateAccessKey"}


def _parliament_findings(document: dict, community: bool = False) -> list[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from parliament import analyze_policy_string

        policy = analyze_policy_string(json.dumps(document), include_community_auditors=community)
    return sorted((f.issue, str(f.detail)) for f in policy.findings)


def _all_documents(rendering, field: str, types: tuple[str, ...]) -> dict[str, dict]:
    return {
        f"{r.type.split(':')[-1]} {r.name}": json.loads(r.inputs[field])
        for r in rendering.resources
        if r.type in types
    }


@pytest.mark.parametrize("mode", ["oidc", "access-key"])
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_permission_policy_passes_parliament_with_no_findings(renderings, stack, mode):
    default = mode == "oidc"  # the session's renderings are in the default mode
    rendering = renderings[stack] if default else render(stack_config(stack, awsAuth=mode))
    documents = _all_documents(
        rendering, "policy", (ROLE_POLICY, POLICY, "aws:iam/userPolicy:UserPolicy")
    )
    assert len(documents) >= 4
    for name, document in documents.items():
        assert _parliament_findings(document) == [], name


def test_runtime_and_read_only_policies_pass_parliaments_community_auditors_too(renderings) -> None:
    for purpose in ("runtime", "preview", "drift"):
        assert _parliament_findings(role_policy(renderings["dev"], purpose), community=True) == []


def test_trust_policies_raise_only_parliaments_known_false_positives(renderings) -> None:
    """parliament lints identity policies: on a trust policy it can only say that it has no
    Resource (trust policies never do) and that it does not know OIDC providers as federation
    sources (its list predates them). Anything else it finds would be real."""
    for stack in ("dev", "prod"):
        documents = _all_documents(renderings[stack], "assumeRolePolicy", (ROLE,))
        for name, document in documents.items():
            issues = {issue for issue, _ in _parliament_findings(document)}
            assert issues <= {"UNKNOWN_FEDERATION_SOURCE", "MALFORMED"}, name
            details = [d for issue, d in _parliament_findings(document) if issue == "MALFORMED"]
            assert details == ["Statement contains neither Resource nor NotResource"], name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_trust_policies_are_known_on_a_stacks_first_preview(stack) -> None:
    """On the first preview nothing exists yet, so an output such as a new OIDC provider's `arn`
    is unknown; a trust built from it could be neither shown nor checked by the policy pack on the
    run that matters most. AWS derives a provider's ARN from its issuer host, so it is built from
    the account id (known: get_caller_identity runs during a preview)."""
    rendering = render(stack_config(stack), RecordingMocks(first_preview=True))
    roles = rendering.of_type(ROLE)
    assert roles
    for found in roles:
        trust = found.inputs["assumeRolePolicy"]
        assert isinstance(trust, str) and trust.startswith("{"), (found.name, trust)
        (statement,) = json.loads(trust)["Statement"]
        assert statement["Principal"]["Federated"].startswith(
            f"arn:aws:iam::{MOCK_ACCOUNT_ID}:oidc-provider/"
        )


def test_the_owner_stacks_roles_wait_for_the_oidc_providers(monkeypatch) -> None:
    """The ARN no longer ties a role to the provider it names, so the order is explicit."""
    import pulumi_aws

    recorded: dict[str, list] = {}
    original = pulumi_aws.iam.Role

    def recording(resource_name, *args, **kwargs):
        recorded[resource_name] = list(kwargs["opts"].depends_on or [])
        return original(resource_name, *args, **kwargs)

    monkeypatch.setattr(pulumi_aws.iam, "Role", recording)
    render(stack_config("prod"))
    providers = {"github-actions-oidc", "modal-oidc"}
    for name, depends_on in recorded.items():
        assert {r._name for r in depends_on} >= providers, name  # noqa: SLF001


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_bucket_tags_are_read_through_s3_control_and_written_by_no_ci_role(
    renderings, stack
) -> None:
    """pulumi-aws 7.51.1's Bucket tags through S3 Control (TagResource, UntagResource,
    ListTagsForResource; its docstring), falling back to the bucket tagging calls."""
    rendering = renderings[stack]
    bucket = f"arn:aws:s3:::acme-ml-rentagpu-{stack}"

    def actions_on_bucket(purpose: str) -> set[str]:
        document = role_policy(rendering, purpose)
        return {
            action
            for statement in document["Statement"]
            if bucket in statement["Resource"]
            for action in statement["Action"]
        }

    assert {"s3:ListTagsForResource", "s3:GetBucketTagging"} <= actions_on_bucket("drift")
    # Tagging the bucket is the admin's `pulumi up` (governance); no CI role writes it.
    for purpose in ("deploy", "preview", "drift"):
        assert not {"s3:TagResource", "s3:UntagResource"} & actions_on_bucket(purpose)


def test_the_bucket_settings_are_applied_one_after_another(monkeypatch) -> None:
    """S3 answers concurrent configuration changes of one bucket with 409 OperationAborted."""
    import pulumi_aws

    order = [
        ("Bucket", "prod-bucket"),
        ("BucketPublicAccessBlock", "prod-bucket-public-access-block"),
        ("BucketOwnershipControls", "prod-bucket-ownership"),
        ("BucketServerSideEncryptionConfiguration", "prod-bucket-encryption"),
        ("BucketVersioning", "prod-bucket-versioning"),
        ("BucketPolicy", "prod-bucket-policy"),
    ]
    waits_for: dict[str, set[str]] = {}
    for class_name, _ in order[1:]:
        original = getattr(pulumi_aws.s3, class_name)

        def recording(resource_name, *args, _original=original, **kwargs):
            waits_for[resource_name] = {r._name for r in kwargs["opts"].depends_on}  # noqa: SLF001
            return _original(resource_name, *args, **kwargs)

        monkeypatch.setattr(pulumi_aws.s3, class_name, recording)
    render(stack_config("prod"))
    for (_, before), (_, after) in zip(order, order[1:], strict=False):
        assert waits_for[after] == {before}, after
