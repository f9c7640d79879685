"""The Modal hook: Pulumi dynamic resources for the stack's Modal environment, secrets and app.

Importing this package imports `pulumi` but not `modal`: the SDK is loaded inside provider methods,
so the offline plan (`python -m infra plan`) stays fast and makes no network call. Providers read
`MODAL_TOKEN_ID`, `MODAL_TOKEN_SECRET` and `MODAL_SERVER_URL` when they run (see `client`).
"""

from infra.modal_hook.client import CallPolicy, Failure, ModalCallError
from infra.modal_hook.deployment import (
    ModalAppDeployment,
    ModalAppDeploymentArgs,
    ModalAppDeploymentProvider,
)
from infra.modal_hook.environment import (
    ModalEnvironment,
    ModalEnvironmentArgs,
    ModalEnvironmentProvider,
)
from infra.modal_hook.secret import ModalSecret, ModalSecretArgs, ModalSecretProvider

__all__ = [
    "CallPolicy",
    "Failure",
    "ModalAppDeployment",
    "ModalAppDeploymentArgs",
    "ModalAppDeploymentProvider",
    "ModalCallError",
    "ModalEnvironment",
    "ModalEnvironmentArgs",
    "ModalEnvironmentProvider",
    "ModalSecret",
    "ModalSecretArgs",
    "ModalSecretProvider",
]
