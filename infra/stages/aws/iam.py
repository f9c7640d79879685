"""IAM policy documents, built by pure functions so tests and linters see exactly what AWS gets.

Who may do what:
- runtime role/user (the GPU app): list its two prefixes, read inputs, create outputs, each only
  if it does not exist yet (a conditional write). Nothing else.
- runtime boundary: the ceiling on the runtime principal. Even a deploy role that rewrites the
  runtime's inline policy cannot lift it past Get, List and create-only Put on this stack's bucket.
- deploy role (CI `pulumi up` in the GitHub environment): read everything the stack owns; change
  the runtime role's inline policy (capped by the boundary), the runtime user and its keys in
  access-key mode, and the bucket's settings. It cannot create, delete or re-trust the runtime
  role, or change itself, the preview and drift roles, the boundary, the OIDC providers or the
  bucket policy (which could grant it object access): those need the admin (README: Bootstrap).
- preview and drift roles: read-only versions of the deploy role's reads.
"""

from __future__ import annotations

from typing import Any

from infra.core import names

Document = dict[str, Any]


def _document(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> Document:
    statement: Document = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resources,
    }
    statement.update(extra)
    return statement


# Trust policies.


def _web_identity_trust(
    provider_arn: str, host: str, audience: str, subject: Any, like: bool
) -> Document:
    condition: Document = {"StringEquals": {f"{host}:aud": audience}}
    if like:
        condition["StringLike"] = {f"{host}:sub": subject}
    else:
        condition["StringEquals"][f"{host}:sub"] = subject
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }
    )


def github_deploy_trust(
    provider_arn: str, owner: str, repository: str, environment: str
) -> Document:
    """Only jobs that run in this repository's GitHub environment `environment` may assume it."""
    subject = names.github_environment_subject(owner, repository, environment)
    return _web_identity_trust(
        provider_arn, names.GITHUB_OIDC_HOST, names.GITHUB_OIDC_AUDIENCE, subject, like=False
    )


def github_preview_trust(provider_arn: str, owner: str, repository: str) -> Document:
    """Only pull-request jobs of this repository (forks get no OIDC token at all)."""
    subject = names.github_pull_request_subject(owner, repository)
    return _web_identity_trust(
        provider_arn, names.GITHUB_OIDC_HOST, names.GITHUB_OIDC_AUDIENCE, subject, like=False
    )


def github_drift_trust(
    provider_arn: str, owner: str, repository: str, readonly_environment: str | None
) -> Document:
    """Only the scheduled drift check: jobs in the stack's read-only GitHub environment (which
    admits main only) when it has one, else jobs on main without an environment."""
    if readonly_environment is None:
        subject = names.github_main_subject(owner, repository)
    else:
        subject = names.github_environment_subject(owner, repository, readonly_environment)
    return _web_identity_trust(
        provider_arn, names.GITHUB_OIDC_HOST, names.GITHUB_OIDC_AUDIENCE, subject, like=False
    )


def modal_runtime_trust(
    provider_arn: str, workspace_id: str, environment: str, app: str, function: str
) -> Document:
    """Only containers of one function of one app in one Modal environment of one workspace.

    AWS can condition on `sub` alone (not on Modal's custom claims), so every part of it is pinned
    and only the trailing container id is a wildcard.
    """
    subject = names.modal_subject_pattern(workspace_id, environment, app, function)
    return _web_identity_trust(
        provider_arn, names.MODAL_OIDC_HOST, names.MODAL_OIDC_AUDIENCE, subject, like=True
    )


# Permission policies.

# Write-once in IAM: S3 evaluates `s3:if-none-match` from the request's If-None-Match header, and
# `Null: false` requires the header (S3 accepts only `*` there, "create, never replace"). This is
# AWS's documented form ("Enforce conditional writes on Amazon S3 buckets", S3 User Guide). So a
# holder of the runtime credentials can create a result but never overwrite one, whatever the app
# does. Multipart uploads are left out on purpose: CreateMultipartUpload and UploadPart cannot
# carry the header, so AWS's example exempts them with `s3:ObjectCreationOperation`; the app never
# uploads in parts, so the runtime gets no such exemption. parliament skips keys under `Null`, so
# the key's spelling is checked against parliament's action table by a test instead.
IF_NONE_MATCH_KEY = "s3:if-none-match"
CREATE_ONLY = {"Null": {IF_NONE_MATCH_KEY: "false"}}


def runtime_policy(bucket: str, input_prefix: str, output_prefix: str) -> Document:
    """Exactly the S3 calls the GPU app makes: list its prefixes, read inputs, create outputs."""
    arn = names.bucket_arn(bucket)
    return _document(
        _allow(
            "ListJobPrefixes",
            ["s3:ListBucket"],
            [arn],
            Condition={"StringLike": {"s3:prefix": [f"{input_prefix}*", f"{output_prefix}*"]}},
        ),
        _allow("ReadInputs", ["s3:GetObject"], [f"{arn}/{input_prefix}*"]),
        _allow(
            "CreateOutputsOnce",
            ["s3:PutObject"],
            [f"{arn}/{output_prefix}*"],
            Condition=CREATE_ONLY,
        ),
    )


def runtime_boundary(bucket: str) -> Document:
    """Permissions boundary of the runtime principal: this bucket's objects, create-only writes,
    no delete, no IAM. The condition is repeated here so that no rewrite of the inline policy (the
    deploy role may make one) can let the runtime overwrite a result."""
    arn = names.bucket_arn(bucket)
    return _document(
        _allow("BucketList", ["s3:ListBucket"], [arn]),
        _allow("BucketRead", ["s3:GetObject"], [f"{arn}/*"]),
        _allow("BucketCreateOnce", ["s3:PutObject"], [f"{arn}/*"], Condition=CREATE_ONLY),
    )


_BUCKET_READ = [
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:ListBucket",  # HeadBucket, which every refresh of a bucket makes, needs it
]
_BUCKET_WRITE = [
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
]


def _read_statements(account_id: str, environment: str, bucket: str) -> list[Document]:
    path = names.iam_path(environment)
    return [
        _allow(
            "ReadStackRoles",
            [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
            ],
            [f"arn:aws:iam::{account_id}:role{path}*"],
        ),
        _allow(
            "ReadStackUsers",
            [
                "iam:GetUser",
                "iam:GetUserPolicy",
                "iam:ListAccessKeys",
                "iam:ListAttachedUserPolicies",
                "iam:ListUserPolicies",
            ],
            [f"arn:aws:iam::{account_id}:user{path}*"],
        ),
        _allow(
            "ReadStackPolicies",
            ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"],
            [f"arn:aws:iam::{account_id}:policy{path}*"],
        ),
        _allow(
            "ReadOidcProviders",
            ["iam:GetOpenIDConnectProvider"],
            [
                names.oidc_provider_arn(account_id, names.GITHUB_OIDC_HOST),
                names.oidc_provider_arn(account_id, names.MODAL_OIDC_HOST),
            ],
        ),
        _allow("ReadBucket", list(_BUCKET_READ), [names.bucket_arn(bucket)]),
    ]


def read_only_policy(account_id: str, environment: str, bucket: str) -> Document:
    """What `pulumi preview` and `pulumi refresh` of one stack read in AWS; nothing more."""
    return _document(*_read_statements(account_id, environment, bucket))


def deploy_policy(
    account_id: str, environment: str, bucket: str, access_key_mode: bool
) -> Document:
    """What `pulumi up` of one stack changes in AWS, scoped by exact ARN to that stack.

    The runtime role itself (its existence and its trust) is the admin's: a deploy role that could
    create it or rewrite its trust could name itself and read the bucket through it. CI changes
    only the role's inline policy, which the boundary caps.
    """
    runtime_role = names.iam_arn(
        account_id, environment, "role", names.role_name(environment, "runtime")
    )
    boundary = names.iam_arn(
        account_id, environment, "policy", names.runtime_boundary_name(environment)
    )
    statements = _read_statements(account_id, environment, bucket) + [
        _allow(
            "ManageRuntimeRolePolicy",
            ["iam:DeleteRolePolicy", "iam:PutRolePolicy", "iam:TagRole", "iam:UntagRole"],
            [runtime_role],
        ),
        _allow("ManageBucket", list(_BUCKET_WRITE), [names.bucket_arn(bucket)]),
    ]
    if access_key_mode:
        # In access-key mode CI must create the runtime user's keys, so it can always obtain
        # runtime credentials; the boundary still caps them at this bucket's objects.
        runtime_user = names.iam_arn(
            account_id, environment, "user", names.runtime_user_name(environment)
        )
        statements += [
            _allow(
                "CreateRuntimeUserUnderBoundary",
                ["iam:CreateUser", "iam:PutUserPermissionsBoundary"],
                [runtime_user],
                Condition={"ArnEquals": {"iam:PermissionsBoundary": boundary}},
            ),
            _allow(
                "ManageRuntimeUser",
                [
                    "iam:CreateAccessKey",
                    "iam:DeleteAccessKey",
                    "iam:DeleteUser",
                    "iam:DeleteUserPolicy",
                    "iam:ListGroupsForUser",
                    "iam:PutUserPolicy",
                    "iam:TagUser",
                    "iam:UntagUser",
                    "iam:UpdateAccessKey",
                ],
                [runtime_user],
            ),
        ]
    return _document(*statements)


def bucket_policy(bucket: str) -> Document:
    """Bucket policy: refuse every request that does not use TLS, whoever makes it."""
    arn = names.bucket_arn(bucket)
    return _document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
