"""What the infrastructure and the app agree on: the one module of `modal_app/` that infra imports.

Standard library only, no side effects, so the Pulumi program can import it cheaply and the app can
read it in its containers. Everything two sides must spell the same way lives here:

- the runtime secret: its name, its keys, which keys each auth mode needs, and which are credentials;
- the rules for a valid region, bucket, key prefix, app name and GPU list (the stack config checks a
  value with the same function the app later checks it with, so a value the program accepted is one
  the app accepts);
- the deploy-time variables `modal deploy` reads, and their defaults;
- the function the app exposes and the smoke job the deploy runs.

Each rule returns None when a value is fine, else the text of what is allowed; callers add the name
of the key or variable at fault.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

# The runtime secret.

SECRET_NAME = "rentagpu-runtime"

AWS_REGION = "AWS_REGION"
BUCKET = "RENTAGPU_BUCKET"
INPUT_PREFIX = "RENTAGPU_INPUT_PREFIX"
OUTPUT_PREFIX = "RENTAGPU_OUTPUT_PREFIX"
ROLE_ARN = "AWS_ROLE_ARN"
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"

# Not keys of the secret: Modal injects the identity token into every container of an app whose
# name qualifies, and the endpoint override exists for tests and S3-compatible stores.
IDENTITY_TOKEN = "MODAL_IDENTITY_TOKEN"
ENDPOINT_URL = "AWS_ENDPOINT_URL"

OIDC = "oidc"
ACCESS_KEY = "access-key"
AUTH_MODES = (OIDC, ACCESS_KEY)
AuthMode = Literal["oidc", "access-key"]
DEFAULT_AUTH_MODE = OIDC

COMMON_KEYS = (AWS_REGION, BUCKET, INPUT_PREFIX, OUTPUT_PREFIX)
OIDC_KEYS = (ROLE_ARN,)
ACCESS_KEY_KEYS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
# Keys whose values are credentials: never echoed in an error, a repr or a log line.
CREDENTIAL_KEYS = frozenset(ACCESS_KEY_KEYS)


def required_keys(mode: str) -> tuple[str, ...]:
    """The keys the runtime secret must hold in `mode` ("oidc" or "access-key")."""
    if mode == OIDC:
        return COMMON_KEYS + OIDC_KEYS
    if mode == ACCESS_KEY:
        return COMMON_KEYS + ACCESS_KEY_KEYS
    raise ValueError(f"unknown auth mode {mode!r}; expected one of: {', '.join(AUTH_MODES)}")


# What a valid region, bucket and prefix are.

_REGION = re.compile(r"^(?:us|eu|ap|sa|ca|me|af|il|mx)(?:-gov)?-[a-z]+-\d$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9!_.'()-]+$")


def region_problem(value: str) -> str | None:
    """None if `value` is an AWS region code, else what is allowed."""
    if _REGION.fullmatch(value):
        return None
    return "an AWS region code such as 'us-east-1' or 'eu-west-2'"


def bucket_problem(value: str) -> str | None:
    """None if `value` is a valid S3 bucket name, else what is allowed."""
    allowed = (
        "an S3 bucket name: 3-63 lowercase letters, digits, '.', '-', starting and ending with a "
        "letter or digit, no '..', not an IP address, no 'xn--' prefix or '-s3alias' suffix"
    )
    if not _BUCKET.fullmatch(value) or ".." in value or ".-" in value or "-." in value:
        return allowed
    if value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3")):
        return allowed
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return allowed


def prefix_problem(value: str) -> str | None:
    """None if `value` is a safe key prefix (relative, '/'-terminated, no '..'), else what is."""
    allowed = (
        "a key prefix such as 'jobs/input/': relative (no leading '/'), ending in '/', "
        "made of letters, digits and !_.'()- without '..', '.' or empty segments"
    )
    if not value or value.startswith("/") or not value.endswith("/") or len(value) > 512:
        return allowed
    for segment in value[:-1].split("/"):
        if segment in ("", ".", "..") or not _PREFIX_SEGMENT.fullmatch(segment):
            return allowed
    return None


def prefixes_overlap(input_prefix: str, output_prefix: str) -> bool:
    """True when one prefix contains the other: the app could then overwrite its own inputs."""
    return input_prefix.startswith(output_prefix) or output_prefix.startswith(input_prefix)


DEFAULT_INPUT_PREFIX = "inputs/"
DEFAULT_OUTPUT_PREFIX = "outputs/"

# How the app is deployed.

APP_NAME_VARIABLE = "MODAL_APP_NAME"
GPUS_VARIABLE = "RENTAGPU_GPUS"
AUTH_MODE_VARIABLE = "RENTAGPU_AWS_AUTH"

DEFAULT_APP_NAME = "rentagpu-executor"
FUNCTION_NAME = "run_gpu_job"
DEFAULT_GPUS = ("H100", "A100-80GB")
# Modal's GPU type names.
GPU_TYPES = ("T4", "L4", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "H100", "H200", "B200")
GPU_EXPECTED = f"one of {', '.join(GPU_TYPES)}, optionally ':N' (1-8)"

# Modal injects no identity token into apps with other names, so OIDC would silently break.
_APP_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_GPU = re.compile(r"^(?P<type>[A-Za-z0-9-]+)(?::(?P<count>[1-8]))?$")


def app_name_problem(value: str) -> str | None:
    """None if `value` is an app name Modal issues identity tokens for, else what is allowed."""
    if _APP_NAME.fullmatch(value):
        return None
    return (
        "at most 64 letters, digits, '-', '.', '_' (Modal injects no OIDC identity token into "
        "apps with other names, so the runtime role could never be assumed)"
    )


def normalise_gpu(choice: str) -> str | None:
    """Modal's spelling of one GPU choice ('h100:2' -> 'H100:2'), or None if it is not one."""
    match = _GPU.fullmatch(choice)
    known = {t.upper(): t for t in GPU_TYPES}
    if not match or match["type"].upper() not in known:
        return None
    return known[match["type"].upper()] + (f":{match['count']}" if match["count"] else "")


# What the deploy checks.

# The deploy's smoke job: it must answer {"ready": True, ...} (see modal_app/jobs/healthcheck.py).
SMOKE_PAYLOAD = {"job": "healthcheck"}
# The `status` of a result whose payload was refused: returned, not raised, so Modal never retries
# it (modal_app.executor.handle); `field` and `reason` say what to change.
REFUSED = "refused"
