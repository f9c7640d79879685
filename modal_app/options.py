"""How the app is deployed, read from the deploying process's environment.

`modal deploy` imports `modal_app/app.py` on the deploying machine; these variables, set by the
deploy stage from stack config, choose the app's name, its GPUs and which keys its secret must
hold. Containers import the module too but use the deployed definition, so they need none of them.
Every problem names its variable; a bad value stops the deploy instead of deploying a guess. The
variables, defaults and rules are the contract's (`modal_app.contract`).
"""

from __future__ import annotations

from collections.abc import Mapping

from modal_app.contract import (
    APP_NAME_VARIABLE,
    AUTH_MODE_VARIABLE,
    AUTH_MODES,
    DEFAULT_APP_NAME,
    DEFAULT_AUTH_MODE,
    DEFAULT_GPUS,
    GPU_EXPECTED,
    GPUS_VARIABLE,
    app_name_problem,
    normalise_gpu,
)
from modal_app.errors import OptionsError


def app_name(environ: Mapping[str, str]) -> str:
    name = environ.get(APP_NAME_VARIABLE, "").strip() or DEFAULT_APP_NAME
    allowed = app_name_problem(name)
    if allowed:
        raise OptionsError(f"{APP_NAME_VARIABLE}: {name!r} is not valid; expected {allowed}")
    return name


def gpu_choices(environ: Mapping[str, str]) -> tuple[str, ...]:
    """GPU types in order of preference; Modal takes the first one it has capacity for."""
    raw = environ.get(GPUS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_GPUS
    choices = tuple(part.strip() for part in raw.split(","))
    normalised: list[str] = []
    for choice in choices:
        gpu = normalise_gpu(choice)
        if gpu is None:
            raise OptionsError(
                f"{GPUS_VARIABLE}: {choice!r} is not valid; expected a comma-separated list, "
                f"each {GPU_EXPECTED}, first choice first"
            )
        normalised.append(gpu)
    if len(set(normalised)) != len(normalised):
        raise OptionsError(f"{GPUS_VARIABLE}: {raw!r} lists the same GPU twice")
    return tuple(normalised)


def auth_mode(environ: Mapping[str, str]) -> str:
    """Which keys the runtime secret must hold (`contract.required_keys`)."""
    mode = environ.get(AUTH_MODE_VARIABLE, "").strip() or DEFAULT_AUTH_MODE
    if mode not in AUTH_MODES:
        raise OptionsError(
            f"{AUTH_MODE_VARIABLE}: {mode!r} is not valid; expected one of: {', '.join(AUTH_MODES)}"
        )
    return mode
