"""IAM policy documents, built by pure functions so tests and linters see exactly what AWS gets.

Who may do what:
- runtime role/user (the GPU app): list its two prefixes, read inputs, create outputs, each only
  if it does not exist yet (a conditional write). Nothing else.
- runtime boundary: the ceiling on the runtime principal. Even a deploy role that rewrites the
  runtime's inline policy cannot lift it past Get, List and create-only Put on this stack's bucket.
- deploy role (CI `pulumi up --target` of the delivery plane, in the GitHub environment): change
  the runtime principal's inline policy (capped by the boundary); nothing else. Roles, trust, the
  boundary, the bucket and its policy, the runtime user and its keys are the admin's (governance).
- drift role: reads every resource of the stack by exact ARN (`pulumi refresh`), no object data.
- preview role: the OIDC provider lookups a `pulumi preview` makes; nothing of the stack.
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


def github_trust(provider_arn: str, owner_id: int, repository_id: int, context: str) -> Document:
    """Only jobs of this repository (by its and its owner's numeric ids) in `context`: the deploy
    role's environment, pull requests, or main (`names.ci_role_contexts`)."""
    subject = names.github_subject(owner_id, repository_id, context)
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
    # pulumi-aws 7.x reads a bucket's tags through S3 Control (aws.s3.Bucket docstring: "use the
    # S3 Control tagging APIs TagResource, UntagResource, and ListTagsForResource"), falling back to
    # GetBucketTagging; both are granted so neither path is refused.
    "s3:ListTagsForResource",
]


def stack_roles(account_id: str, environment: str) -> list[str]:
    """The exact ARNs of every role a stack has (a role that does not exist reads as absent)."""
    return [
        names.iam_arn(account_id, environment, "role", names.role_name(environment, purpose))
        for purpose in (*names.ci_role_contexts(environment), "runtime")
    ]


def _oidc_provider_read(account_id: str) -> Document:
    # A stack that does not own the providers looks them up by ARN on every run, `up` included.
    return _allow(
        "ReadOidcProviders",
        ["iam:GetOpenIDConnectProvider"],
        [
            names.oidc_provider_arn(account_id, names.GITHUB_OIDC_HOST),
            names.oidc_provider_arn(account_id, names.MODAL_OIDC_HOST),
        ],
    )


def read_only_policy(account_id: str, environment: str, bucket: str) -> Document:
    """What `pulumi refresh` of one stack reads in AWS (the drift check), by exact ARN; no data."""
    runtime_user = names.iam_arn(
        account_id, environment, "user", names.runtime_user_name(environment)
    )
    boundary = names.iam_arn(
        account_id, environment, "policy", names.runtime_boundary_name(environment)
    )
    return _document(
        _allow(
            "ReadStackRoles",
            [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
            ],
            stack_roles(account_id, environment),
        ),
        _allow(
            "ReadRuntimeUser",
            [
                "iam:GetAccessKeyLastUsed",  # the audit: when the runtime key was last used
                "iam:GetUser",
                "iam:GetUserPolicy",
                "iam:ListAccessKeys",
                "iam:ListAttachedUserPolicies",
                "iam:ListUserPolicies",
            ],
            [runtime_user],
        ),
        _allow(
            "ReadRuntimeBoundary",
            ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"],
            [boundary],
        ),
        _oidc_provider_read(account_id),
        _allow("ReadBucket", list(_BUCKET_READ), [names.bucket_arn(bucket)]),
    )


def preview_policy(account_id: str) -> Document:
    """What `pulumi preview` of a stack needs in AWS: the OIDC provider lookups, nothing else.

    A preview reads no resource (it diffs the program against the state), so the role pull
    requests can assume reads nothing of the stack's IAM or bucket.
    """
    return _document(_oidc_provider_read(account_id))


def deploy_policy(account_id: str, environment: str, access_key_mode: bool) -> Document:
    """What CI's `pulumi up` of one stack changes in AWS: the delivery plane, by exact ARN.

    CI applies only the runtime principal's inline policy, which the boundary caps (README: "Two
    planes"). The roles, their trust, the boundary, the bucket and its policy, the runtime user and
    its keys are governance: only an admin's `pulumi up` changes them. A deploy role that could
    create or re-trust a role, or mint a key, could hand itself the runtime's access.
    """
    runtime_role = names.iam_arn(
        account_id, environment, "role", names.role_name(environment, "runtime")
    )
    statements = [
        _oidc_provider_read(account_id),
        _allow(
            "ManageRuntimeRolePolicy",
            ["iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"],
            [runtime_role],
        ),
    ]
    if access_key_mode:
        runtime_user = names.iam_arn(
            account_id, environment, "user", names.runtime_user_name(environment)
        )
        statements.append(
            _allow(
                "ManageRuntimeUserPolicy",
                ["iam:DeleteUserPolicy", "iam:GetUserPolicy", "iam:PutUserPolicy"],
                [runtime_user],
            )
        )
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
