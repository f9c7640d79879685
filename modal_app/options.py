"""How the app is deployed, read from the deploying process's environment.

`modal deploy` imports `modal_app/app.py` on the deploying machine; these variables, set by the
deploy stage from stack config, choose the app's name, its GPUs and which keys its secret must
hold. Containers import the module too but use the deployed definition, so they need none of them.
Every problem names its variable; a bad value stops the deploy instead of deploying a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from modal_app import settings
from modal_app.errors import OptionsError

APP_NAME_VARIABLE = "MODAL_APP_NAME"
GPUS_VARIABLE = "RENTAGPU_GPUS"
AUTH_MODE_VARIABLE = "RENTAGPU_AWS_AUTH"

DEFAULT_APP_NAME = "rentagpu-executor"
DEFAULT_GPUS = ("H100", "A100-80GB")
# Modal's GPU type names (the stack config validates with the same rules, from this module).
GPU_TYPES = ("T4", "L4", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "H100", "H200", "B200")

# Modal injects no identity token into apps with other names, and OIDC would silently break.
_APP_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_GPU = re.compile(r"^(?P<type>[A-Za-z0-9-]+)(?::(?P<count>[1-8]))?$")


def app_name(environ: Mapping[str, str]) -> str:
    name = environ.get(APP_NAME_VARIABLE, "").strip() or DEFAULT_APP_NAME
    if not _APP_NAME.fullmatch(name):
        raise OptionsError(
            f"{APP_NAME_VARIABLE}: {name!r} is not valid; expected at most 64 letters, digits, "
            "'-', '.', '_' (Modal gives other names no OIDC identity token)"
        )
    return name


def normalise_gpu(choice: str) -> str | None:
    """Modal's spelling of one GPU choice ('h100:2' -> 'H100:2'), or None if it is not one."""
    match = _GPU.fullmatch(choice)
    known = {t.upper(): t for t in GPU_TYPES}
    if not match or match["type"].upper() not in known:
        return None
    return known[match["type"].upper()] + (f":{match['count']}" if match["count"] else "")


GPU_EXPECTED = f"one of {', '.join(GPU_TYPES)}, optionally ':N' (1-8)"


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
    """Which keys the runtime secret must hold (`settings.required_keys`)."""
    mode = environ.get(AUTH_MODE_VARIABLE, "").strip() or settings.OIDC
    if mode not in settings.AUTH_MODES:
        raise OptionsError(
            f"{AUTH_MODE_VARIABLE}: {mode!r} is not valid; expected one of: "
            f"{', '.join(settings.AUTH_MODES)}"
        )
    return mode
