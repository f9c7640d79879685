"""Stage 4: the GPU app deployed to the stack's Modal environment, then smoke-tested.

It comes last because the app relies on everything before it: the protected GitHub environment
whose tokens deploy it, the AWS role its containers assume, the Modal environment and the runtime
secret it reads. What would make a redeploy necessary is computed here, when the program runs,
without network or credentials (so the offline plan shows it): the hash of the source that ships,
the installed `modal` version, and a fingerprint of the runtime secret's values (secret). The
source revision used as the deployment tag is read by the provider at deploy time instead
(see `infra/modal_hook/app_source.py`), so a new commit that leaves `modal_app/` alone changes
nothing here.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from infra.core import names
from infra.core.config import StackConfig
from infra.core.resource_types import STAGE_DEPLOY
from infra.modal_hook.app_source import secret_fingerprint, source_hash
from infra.modal_hook.deployment import ModalAppDeployment, ModalAppDeploymentArgs


@dataclass(frozen=True)
class DeployStageArgs:
    config: StackConfig
    # From the Modal stage's outputs, so the deploy waits for the environment and the secret.
    environment_name: pulumi.Input[str]
    runtime_secret_name: pulumi.Input[str]
    runtime_secret_id: pulumi.Input[str]
    runtime_secret_values: pulumi.Input[Mapping[str, str]]


def installed_modal_version() -> str:
    """The `modal` client that deploys (and whose client mount the containers get)."""
    return importlib.metadata.version("modal")


class DeployStage(pulumi.ComponentResource):
    deployment: ModalAppDeployment

    def __init__(
        self, name: str, args: DeployStageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(STAGE_DEPLOY, name, None, opts)
        cfg = args.config
        fingerprint = pulumi.Output.from_input(args.runtime_secret_values).apply(
            lambda values: secret_fingerprint(values or {})
        )
        self.deployment = ModalAppDeployment(
            names.app_deployment_resource(cfg.environment),
            ModalAppDeploymentArgs(
                environment_name=args.environment_name,
                app_name=cfg.modal.app_name,
                function_name=cfg.modal.function_name,
                gpus=list(cfg.modal.gpus),
                auth_mode=cfg.aws.auth_mode,
                runtime_secret_name=args.runtime_secret_name,
                runtime_secret_id=args.runtime_secret_id,
                secret_fingerprint=pulumi.Output.secret(fingerprint),
                source_hash=source_hash(),  # this checkout's modal_app/, which the provider ships
                modal_version=installed_modal_version(),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "app_name": self.deployment.app_name,
                "version": self.deployment.version,
                "deployment_tag": self.deployment.deployment_tag,
            }
        )
