"""The Modal hook: Pulumi dynamic resources for the stack's Modal environment and secrets.

Importing this package imports `pulumi` but not `modal`: the SDK is loaded inside provider methods,
so the offline plan (`python -m infra plan`) stays fast and makes no network call. Providers read
`MODAL_TOKEN_ID`, `MODAL_TOKEN_SECRET` and `MODAL_SERVER_URL` when they run (see `client`).
"""

from infra.modal_hook.client import CallPolicy, Failure, ModalCallError
from infra.modal_hook.environment import (
    ModalEnvironment,
    ModalEnvironmentArgs,
    ModalEnvironmentProvider,
)
from infra.modal_hook.secret import ModalSecret, ModalSecretArgs, ModalSecretProvider

__all__ = [
    "CallPolicy",
    "Failure",
    "ModalCallError",
    "ModalEnvironment",
    "ModalEnvironmentArgs",
    "ModalEnvironmentProvider",
    "ModalSecret",
    "ModalSecretArgs",
    "ModalSecretProvider",
]
