"""Stage 3: the stack's Modal environment, its spend cap, and the runtime secret the GPU app reads.

The secret is built from stack config and the AWS stage's outputs, never from files: in OIDC mode
it holds the runtime role's ARN (not a credential), in access-key mode the runtime user's key.
Its key names come from `modal_app.contract`, which the app reads them with too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from infra.core import names
from infra.core.config import StackConfig
from infra.core.resource_types import STAGE_MODAL
from infra.modal_hook.budget import ModalBudget, ModalBudgetArgs
from infra.modal_hook.ci_token import ModalCiToken, ModalCiTokenArgs
from infra.modal_hook.environment import ModalEnvironment, ModalEnvironmentArgs
from infra.modal_hook.secret import ModalSecret, ModalSecretArgs
from modal_app import contract


@dataclass(frozen=True)
class ModalStageArgs:
    config: StackConfig
    # GitHub's public key of where each CI token goes, by purpose (an invoke result with `key`
    # and `key_id`).
    ci_token_keys: Mapping[str, pulumi.Output[Any]]
    runtime_role_arn: pulumi.Input[str] | None = None  # OIDC mode
    access_key_id: pulumi.Input[str] | None = None  # access-key mode
    secret_access_key: pulumi.Input[str] | None = None  # access-key mode


def runtime_secret_values(args: ModalStageArgs) -> dict[str, pulumi.Input[str]]:
    """The runtime secret's key/value pairs for the stack's auth mode."""
    aws = args.config.aws
    values: dict[str, pulumi.Input[str]] = {
        contract.AWS_REGION: aws.region,
        contract.BUCKET: aws.bucket,
        contract.INPUT_PREFIX: aws.input_prefix,
        contract.OUTPUT_PREFIX: aws.output_prefix,
    }
    if aws.auth_mode == contract.ACCESS_KEY:
        if args.access_key_id is None or args.secret_access_key is None:
            raise ValueError("access-key mode needs the runtime user's access key")
        values[contract.ACCESS_KEY_ID] = args.access_key_id
        values[contract.SECRET_ACCESS_KEY] = args.secret_access_key
    else:
        if args.runtime_role_arn is None:
            raise ValueError("OIDC mode needs the runtime role's ARN")
        values[contract.ROLE_ARN] = args.runtime_role_arn
    return values


def ci_token_args(
    cfg: StackConfig, purpose: str, environment_name: pulumi.Input[str], key: pulumi.Output[Any]
) -> ModalCiTokenArgs:
    """CI's token of `purpose`: minted under a serial-numbered name, or, for the deploy token
    only, the one `rentagpu:modalTokenId`/`modalTokenSecret` supply (the fallback)."""
    modal = cfg.modal
    adopted = purpose == "deploy" and modal.token_id is not None and modal.token_secret is not None
    common = {
        "environment_name": environment_name,
        "role": names.CI_TOKEN_ROLES[purpose],
        "lifetime_days": modal.ci_token_lifetime_days,
        "public_key": key.key,
        "key_id": key.key_id,
    }
    if adopted:
        assert modal.token_id is not None and modal.token_secret is not None
        return ModalCiTokenArgs(
            **common,
            token_id=pulumi.Output.secret(modal.token_id.reveal()),
            token_secret=pulumi.Output.secret(modal.token_secret.reveal()),
        )
    name = names.ci_service_user(cfg.environment, purpose, modal.ci_token_serial)
    return ModalCiTokenArgs(**common, service_user_name=name)


class ModalStage(pulumi.ComponentResource):
    environment: ModalEnvironment
    budget: ModalBudget | None
    ci_tokens: dict[str, ModalCiToken]
    runtime_secret: ModalSecret

    def __init__(
        self, name: str, args: ModalStageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(STAGE_MODAL, name, None, opts)
        cfg = args.config
        env = cfg.environment
        self.environment = ModalEnvironment(
            names.modal_environment_resource(env),
            ModalEnvironmentArgs.from_config(cfg),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Through the environment's output, so the cap waits for its environment. No cap in the
        # config (dev only; prod requires one) means no resource: the environment keeps whatever
        # cap it has, and removing the key later clears the cap this stack set.
        budget = ModalBudgetArgs.from_config(cfg, self.environment.environment_name)
        self.budget = None
        if budget is not None:
            self.budget = ModalBudget(
                names.modal_budget_resource(env),
                budget,
                opts=pulumi.ResourceOptions(parent=self),
            )
        # After the environment (its name is their input), each in the one role its purpose needs.
        self.ci_tokens = {
            purpose: ModalCiToken(
                names.ci_token_resource(env, purpose, cfg.modal.ci_token_serial),
                ci_token_args(cfg, purpose, self.environment.environment_name, key),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for purpose, key in args.ci_token_keys.items()
        }
        self.runtime_secret = ModalSecret(
            names.modal_runtime_secret_resource(env),
            ModalSecretArgs(
                # Through the environment's output, so the secret waits for its environment.
                environment_name=self.environment.environment_name,
                secret_name=contract.SECRET_NAME,
                values=runtime_secret_values(args),
                required_keys=contract.required_keys(cfg.aws.auth_mode),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "environment_name": self.environment.environment_name,
                "runtime_secret_name": self.runtime_secret.secret_name,
            }
        )
