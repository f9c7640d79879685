"""Stage 2: the S3 bucket the app uses and the least-privilege IAM around it.

Every document comes from `infra.stages.aws.iam` and every name from `infra.core.names`; this
module only wires them to resources. Account singletons (the two OIDC providers) are created by the stack that owns
them and looked up by ARN everywhere else, because an account holds one provider per issuer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.core import names
from infra.core.config import AwsConfig, ModalConfig
from infra.core.resource_types import STAGE_AWS
from infra.stages.aws import iam
from modal_app import contract

CI_ROLE_DESCRIPTIONS = {
    "deploy": "CI `pulumi up` of this stack's delivery plane, from jobs in its GitHub environment",
    "preview": "`pulumi preview` of this stack from pull requests: OIDC provider lookups only",
    "drift": "Read-only `pulumi refresh --preview-only` of this stack, from main",
}


@dataclass(frozen=True)
class AwsStageArgs:
    config: AwsConfig
    modal: ModalConfig
    environment: str
    # (owner id, repository id): what the CI roles' OIDC subjects name (the GitHub stage looks
    # them up; see names.GITHUB_SUBJECT_CLAIMS).
    github_ids: pulumi.Input[tuple[int, int]]


def tags(environment: str) -> dict[str, str]:
    return {"project": "rentagpu", "environment": environment, "managed-by": "pulumi"}


def _json(document_builder, *inputs) -> pulumi.Output[str]:
    """Render a pure document builder over resolved inputs into the JSON AWS stores."""
    return pulumi.Output.all(*inputs).apply(
        lambda values: json.dumps(document_builder(*values), indent=2, sort_keys=True)
    )


class AwsStage(pulumi.ComponentResource):
    runtime_role_arn: pulumi.Output[str] | None
    runtime_access_key_id: pulumi.Output[str] | None
    runtime_secret_access_key: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: AwsStageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(STAGE_AWS, name, None, opts)
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        self._oidc_provider_resources: list[
            pulumi.Resource
        ] = []  # the OIDC providers this stack creates
        github_oidc_arn, modal_oidc_arn = self._oidc_providers(args.config, account_id)
        self._bucket(args)
        self._runtime_principal(args, modal_oidc_arn)
        self._ci_roles(args, account_id, github_oidc_arn)
        self.register_outputs(
            {
                "bucket": self.bucket.bucket,
                "deploy_role_arn": self.deploy_role.arn,
                "drift_role_arn": self.drift_role.arn,
            }
        )

    def _bucket(self, args: AwsStageArgs) -> None:
        """The bucket, private, owner-enforced, encrypted, versioned, TLS only.

        Its settings are chained, each waiting for the one before: S3 answers concurrent changes
        of one bucket's configuration with 409 OperationAborted ("A conflicting conditional
        operation is currently in progress"; pulumi-aws #1570, terraform-provider-aws #7628).
        """
        cfg, env = args.config, args.environment
        self.bucket = aws.s3.Bucket(
            f"{env}-bucket",
            bucket=cfg.bucket,
            force_destroy=False,
            tags=tags(env),
            opts=pulumi.ResourceOptions(parent=self),
        )

        def after(resource: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[resource])

        public_access = aws.s3.BucketPublicAccessBlock(
            f"{env}-bucket-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=after(self.bucket),
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{env}-bucket-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=after(public_access),
        )
        encryption = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="AES256"
        )
        encrypted = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{env}-bucket-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=encryption
                )
            ],
            opts=after(ownership),
        )
        # Versioning keeps the original of any object overwritten or deleted by someone other
        # than the app, e.g. a person with admin credentials making a mistake. The app itself can
        # neither (no delete; writes are create-only in IAM), so no old versions pile up in normal
        # use. It is not protection against a principal that may delete versions: that would be
        # Object Lock, which also makes inputs undeletable and is left to the operator.
        versioned = aws.s3.BucketVersioning(
            f"{env}-bucket-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=after(encrypted),
        )
        aws.s3.BucketPolicy(
            f"{env}-bucket-policy",
            bucket=self.bucket.id,
            policy=json.dumps(iam.bucket_policy(cfg.bucket), indent=2, sort_keys=True),
            opts=after(versioned),
        )

    def _runtime_principal(self, args: AwsStageArgs, modal_oidc_arn: pulumi.Output[str]) -> None:
        """What the GPU app runs as: a role assumed with Modal's identity token, or (access-key
        mode) a user with a key; either way capped by the boundary."""
        cfg, env = args.config, args.environment
        child = pulumi.ResourceOptions(parent=self)
        path = names.iam_path(env)
        self.runtime_boundary = aws.iam.Policy(
            f"{env}-runtime-boundary",
            name=names.runtime_boundary_name(env),
            path=path,
            description="Ceiling on the GPU app's permissions: this stack's bucket objects only",
            policy=json.dumps(iam.runtime_boundary(cfg.bucket), indent=2, sort_keys=True),
            tags=tags(env),
            opts=child,
        )
        runtime_policy = json.dumps(
            iam.runtime_policy(cfg.bucket, cfg.input_prefix, cfg.output_prefix),
            indent=2,
            sort_keys=True,
        )
        self.runtime_role_arn = None
        self.runtime_access_key_id = None
        self.runtime_secret_access_key = None
        self.runtime_access_key = None
        if cfg.auth_mode == contract.ACCESS_KEY:
            user = aws.iam.User(
                f"{env}-runtime-user",
                name=names.runtime_user_name(env),
                path=path,
                permissions_boundary=self.runtime_boundary.arn,
                tags=tags(env),
                opts=child,
            )
            aws.iam.UserPolicy(
                names.runtime_user_policy_resource(env),
                name="s3-job-prefixes",
                user=user.name,
                policy=runtime_policy,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[user]),
            )
            # Bumping accessKeySerial makes a new logical key: Pulumi creates it, updates the
            # Modal secret and runs the smoke test before it deletes the old key, and keeps the
            # old key if anything in between fails.
            self.runtime_access_key = aws.iam.AccessKey(
                names.runtime_access_key_resource(env, cfg.access_key_serial),
                user=user.name,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[user]),
            )
            self.runtime_access_key_id = self.runtime_access_key.id
            self.runtime_secret_access_key = pulumi.Output.secret(self.runtime_access_key.secret)
        else:
            trust = _json(
                iam.modal_runtime_trust,
                modal_oidc_arn,
                args.modal.workspace_id,
                env,
                args.modal.app_name,
                args.modal.function_name,
            )
            role = self._role(
                env,
                "runtime",
                trust,
                runtime_policy,
                "Assumed by the GPU app's containers through Modal's identity token",
                boundary=self.runtime_boundary.arn,
                inline_policy=(names.runtime_role_policy_resource(env), "s3-job-prefixes"),
            )
            self.runtime_role_arn = role.arn

    def _ci_roles(
        self,
        args: AwsStageArgs,
        account_id: pulumi.Output[str],
        github_oidc_arn: pulumi.Output[str],
    ) -> None:
        """CI roles: deploy (delivery plane), preview (pull requests) and drift (read-only)."""
        cfg, env = args.config, args.environment
        access_key_mode = cfg.auth_mode == contract.ACCESS_KEY
        policies = {
            "deploy": _json(lambda a: iam.deploy_policy(a, env, access_key_mode), account_id),
            "preview": _json(iam.preview_policy, account_id),
            "drift": _json(lambda a: iam.read_only_policy(a, env, cfg.bucket), account_id),
        }
        roles: dict[str, aws.iam.Role] = {}
        for purpose, context in names.ci_role_contexts(env).items():
            trust = _json(
                lambda arn, ids, context=context: iam.github_trust(arn, *ids, context),
                github_oidc_arn,
                args.github_ids,
            )
            roles[purpose] = self._role(
                env, purpose, trust, policies[purpose], CI_ROLE_DESCRIPTIONS[purpose]
            )
        self.deploy_role = roles["deploy"]
        self.preview_role = roles["preview"]
        self.drift_role = roles["drift"]

    def _oidc_providers(
        self, cfg: AwsConfig, account_id: pulumi.Output[str]
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The ARNs of the account's GitHub and Modal OIDC providers, built from the account id.

        AWS derives a provider's ARN from its issuer host, so the ARN is known before the provider
        exists: a stack's first preview can show (and the policy pack can check) the trust policies
        that name it. The owning stack creates the providers, and every role waits for them
        (`_oidc_provider_resources`); the other stacks look them up, which fails clearly if they
        are missing.
        """
        arns = []
        for logical_name, host, audience in (
            ("github-actions-oidc", names.GITHUB_OIDC_HOST, names.GITHUB_OIDC_AUDIENCE),
            ("modal-oidc", names.MODAL_OIDC_HOST, names.MODAL_OIDC_AUDIENCE),
        ):
            arn = account_id.apply(
                lambda account, host=host: names.oidc_provider_arn(account, host)
            )
            if cfg.owns_account_singletons:
                self._oidc_provider_resources.append(
                    aws.iam.OpenIdConnectProvider(
                        logical_name,
                        url=f"https://{host}",
                        client_id_lists=[audience],
                        tags={"project": "rentagpu", "managed-by": "pulumi"},
                        opts=pulumi.ResourceOptions(parent=self, protect=True),
                    )
                )
            else:
                # By ARN, not URL: a lookup by URL lists every provider in the account, which
                # would need iam:ListOpenIDConnectProviders on "*".
                invoke = pulumi.InvokeOutputOptions(parent=self)
                arn = aws.iam.get_open_id_connect_provider_output(arn=arn, opts=invoke).arn
            arns.append(arn)
        return arns[0], arns[1]

    def _role(
        self,
        env: str,
        purpose: str,
        trust: pulumi.Input[str],
        policy: pulumi.Input[str],
        description: str,
        *,
        boundary: pulumi.Input[str] | None = None,
        inline_policy: tuple[str, str] | None = None,
    ) -> aws.iam.Role:
        """A role of the stack with one inline policy. `inline_policy` is (logical name, policy
        name) when it is not the CI roles' (`ENV-PURPOSE-role-policy`, `PURPOSE-ENV`)."""
        logical, policy_name = inline_policy or (f"{env}-{purpose}-role-policy", f"{purpose}-{env}")
        role = aws.iam.Role(
            f"{env}-{purpose}-role",
            name=names.role_name(env, purpose),
            path=names.iam_path(env),
            description=description,
            assume_role_policy=trust,
            permissions_boundary=boundary,
            max_session_duration=3600,
            tags=tags(env),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._oidc_provider_resources),
        )
        aws.iam.RolePolicy(
            logical,
            name=policy_name,
            role=role.name,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role]),
        )
        return role
