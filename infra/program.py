"""The Pulumi program: config first, then the stages in dependency order.

`build` declares everything for one parsed config and is called once per stack by the Pulumi
entry point (`__main__.py`), by the offline plan, and by the tests (both stacks in one process).
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.core import names
from infra.core.config import RawValue, StackConfig, parse_config
from infra.core.config_schema import KNOWN_KEYS, PROJECT
from infra.core.errors import ConfigError
from infra.stages.aws.component import AwsStage, AwsStageArgs
from infra.stages.deploy.component import DeployStage, DeployStageArgs
from infra.stages.github.ci_secrets import GitHubCiSecrets, GitHubCiSecretsArgs, SealedToken
from infra.stages.github.ci_variables import GitHubCiVariables, GitHubCiVariablesArgs
from infra.stages.github.component import GitHubStage, GitHubStageArgs, github_provider
from infra.stages.modal.component import ModalStage, ModalStageArgs


def build(cfg: StackConfig) -> dict[str, pulumi.Output]:
    env = cfg.environment
    # prod's read-only CI credentials live in a main-only GitHub environment (see core/names.py).
    readonly = names.readonly_environment(env)

    # 1. GitHub: the protected environment comes first, because the AWS deploy role trusts any
    # job that names it; a role created before its environment is protected is a window in which
    # any branch could deploy. Every GitHub resource and lookup goes through one provider bound to
    # the configured owner.
    github = github_provider(cfg.github.owner)
    on_github = pulumi.ResourceOptions(providers=[github])
    github_stage = GitHubStage(
        "github",
        GitHubStageArgs(
            config=cfg.github,
            environment=env,
            is_prod=cfg.is_prod,
            provider=github,
            readonly_environment=readonly,
        ),
        opts=on_github,
    )

    # 2. AWS: bucket, runtime principal, CI roles.
    aws_stage = AwsStage(
        "aws",
        AwsStageArgs(
            config=cfg.aws,
            modal=cfg.modal,
            environment=env,
            github_ids=github_stage.ids,
        ),
        opts=pulumi.ResourceOptions(depends_on=[github_stage]),
    )
    GitHubCiVariables(
        "github-ci",
        GitHubCiVariablesArgs(
            repository=cfg.github.repository,
            environment=env,
            region=cfg.aws.region,
            deploy_role_arn=aws_stage.deploy_role.arn,
            preview_role_arn=aws_stage.preview_role.arn,
            drift_role_arn=aws_stage.drift_role.arn,
            readonly_environment=readonly,
            app_name=cfg.modal.app_name if cfg.github.owns_repository_settings else None,
        ),
        opts=pulumi.ResourceOptions.merge(
            on_github, pulumi.ResourceOptions(depends_on=[github_stage])
        ),
    )

    # 3. Modal: the environment, CI's tokens (sealed for where GitHub keeps them) and the runtime
    # secret, fed from config and the AWS outputs.
    modal_stage = ModalStage(
        "modal",
        ModalStageArgs(
            config=cfg,
            ci_token_keys=github_stage.ci_token_keys,
            runtime_role_arn=aws_stage.runtime_role_arn,
            access_key_id=aws_stage.runtime_access_key_id,
            secret_access_key=aws_stage.runtime_secret_access_key,
        ),
        opts=pulumi.ResourceOptions(depends_on=[github_stage, aws_stage]),
    )

    # CI's tokens into GitHub, as the ciphertext only GitHub can open.
    GitHubCiSecrets(
        "github-ci-secrets",
        GitHubCiSecretsArgs(
            repository=cfg.github.repository,
            environment=env,
            tokens={
                purpose: SealedToken(token.sealed_token_id, token.sealed_token_secret, token.key_id)
                for purpose, token in modal_stage.ci_tokens.items()
            },
        ),
        opts=pulumi.ResourceOptions.merge(
            on_github, pulumi.ResourceOptions(depends_on=[github_stage, modal_stage])
        ),
    )

    # 4. Deploy: the app goes out last, once what it relies on exists and is protected; a failed
    # smoke test rolls it back and fails the update.
    deploy_stage = DeployStage(
        "deploy",
        DeployStageArgs(
            config=cfg,
            environment_name=modal_stage.environment.environment_name,
            runtime_secret_name=modal_stage.runtime_secret.secret_name,
            runtime_secret_id=modal_stage.runtime_secret.secret_id,
            runtime_secret_values=modal_stage.runtime_secret.values,
        ),
        opts=pulumi.ResourceOptions(depends_on=[github_stage, aws_stage, modal_stage]),
    )

    outputs: dict[str, pulumi.Output] = {
        "environment": pulumi.Output.from_input(env),
        "bucket": aws_stage.bucket.bucket,
        "deploy_role_arn": aws_stage.deploy_role.arn,
        "preview_role_arn": aws_stage.preview_role.arn,
        "drift_role_arn": aws_stage.drift_role.arn,
        "modal_environment": modal_stage.environment.environment_name,
        "modal_runtime_secret": modal_stage.runtime_secret.secret_name,
        "modal_app_version": deploy_stage.deployment.version,
        "modal_app_deployment_tag": deploy_stage.deployment.deployment_tag,
    }
    if aws_stage.runtime_role_arn is not None:
        outputs["runtime_role_arn"] = aws_stage.runtime_role_arn
    return outputs


def raw_config_from_pulumi() -> dict[str, RawValue]:
    """The running program's config as `RawValue`s, secret flags included.

    Reads the engine-provided config directly because `pulumi.Config` can neither list keys (needed
    to reject typos) nor tell a secure value from a plaintext one (needed to refuse the latter).
    """
    from pulumi.runtime import config as runtime_config

    values: dict[str, Any] = {}
    env_config = runtime_config.get_config_env()
    if env_config:
        values.update(env_config)
    values.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(
        runtime_config._SECRET_KEYS.get()  # noqa: SLF001 - the SDK has no public accessor
    )
    return {
        key: RawValue(str(value), key in secret_keys)
        for key, value in values.items()
        if key.startswith(f"{PROJECT}:") or key in KNOWN_KEYS
    }


def main() -> None:
    """Entry point under the Pulumi engine: parse all config, then declare, then export."""
    try:
        cfg = parse_config(pulumi.get_stack(), raw_config_from_pulumi())
    except ConfigError as error:
        # RunError prints the message alone, without a traceback that buries it.
        raise pulumi.RunError(str(error)) from None
    for name, value in build(cfg).items():
        pulumi.export(name, value)
