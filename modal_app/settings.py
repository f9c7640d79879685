"""The runtime secret's contract: which keys the Modal secret holds, and what each may contain.

The Pulumi program imports the key names and `required_keys` from here to build the Modal secret
`rentagpu-runtime`, and the app reads the same keys in its container, so the two can never drift.
This module imports nothing but the standard library: the program can import it cheaply.

Two ways to get AWS credentials, chosen by which keys the secret holds:
- OIDC (preferred): `AWS_ROLE_ARN`; the container trades Modal's identity token for short-lived
  credentials of that role. No long-lived key exists anywhere.
- access key: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` of a runtime IAM user, for workspaces
  without OIDC; the program rotates them.
A secret holding both is refused: it means a mode switch left the old mode's keys behind, and
the app must not guess which identity it runs as.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from modal_app.errors import SettingsError

SECRET_NAME = "rentagpu-runtime"

AWS_REGION = "AWS_REGION"
BUCKET = "RENTAGPU_BUCKET"
INPUT_PREFIX = "RENTAGPU_INPUT_PREFIX"
OUTPUT_PREFIX = "RENTAGPU_OUTPUT_PREFIX"
ROLE_ARN = "AWS_ROLE_ARN"
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"

# Not secret keys: Modal injects the identity token into every container of an app whose name
# qualifies, and the endpoint override exists for tests and S3-compatible stores.
IDENTITY_TOKEN = "MODAL_IDENTITY_TOKEN"
ENDPOINT_URL = "AWS_ENDPOINT_URL"

OIDC = "oidc"
ACCESS_KEY = "access-key"
AUTH_MODES = (OIDC, ACCESS_KEY)
AuthMode = Literal["oidc", "access-key"]

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


# The one definition of a valid region, bucket and prefix: the stack config (infra/config.py)
# checks with these same functions, so a value the program accepted is one the app accepts.
_REGION = re.compile(r"^(?:us|eu|ap|sa|ca|me|af|il|mx)(?:-gov)?-[a-z]+-\d$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9!_.'()-]+$")
_ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
_ENDPOINT = re.compile(r"^https?://[^\s/]+(?::\d+)?/?$")


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


def _role_arn_problem(value: str) -> str | None:
    return (
        None
        if _ROLE_ARN.fullmatch(value)
        else "an IAM role ARN such as 'arn:aws:iam::123456789012:role/name'"
    )


def _access_key_id_problem(value: str) -> str | None:
    return (
        None
        if _ACCESS_KEY_ID.fullmatch(value)
        else "an AWS access key id (16+ capitals and digits)"
    )


def _endpoint_problem(value: str) -> str | None:
    return (
        None
        if _ENDPOINT.fullmatch(value)
        else "an http(s) URL with no path, e.g. 'http://127.0.0.1:5000'"
    )


@dataclass(frozen=True)
class Settings:
    """The runtime configuration of one container, read once from its environment."""

    region: str
    bucket: str
    input_prefix: str
    output_prefix: str
    auth_mode: AuthMode
    role_arn: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check the runtime secret's keys; raise `SettingsError` listing every problem."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def read(key: str, check: Callable[[str], str | None] | None) -> str:
            value = env.get(key, "")
            if value == "":
                problems.append(f"{key}: is required (set by the Modal secret '{SECRET_NAME}')")
                return ""
            allowed = check(value) if check else None
            if allowed:
                shown = "its value" if key in CREDENTIAL_KEYS else repr(value)
                problems.append(f"{key}: {shown} is not valid; expected {allowed}")
            return value

        region = read(AWS_REGION, region_problem)
        bucket = read(BUCKET, bucket_problem)
        input_prefix = read(INPUT_PREFIX, prefix_problem)
        output_prefix = read(OUTPUT_PREFIX, prefix_problem)
        if (
            input_prefix
            and output_prefix
            and (input_prefix.startswith(output_prefix) or output_prefix.startswith(input_prefix))
        ):
            problems.append(
                f"{OUTPUT_PREFIX}: {output_prefix!r} overlaps {INPUT_PREFIX} {input_prefix!r}; "
                "outputs must never land where inputs are read"
            )

        has_role = env.get(ROLE_ARN, "") != ""
        has_keys = any(env.get(k, "") != "" for k in ACCESS_KEY_KEYS)
        mode: AuthMode = OIDC
        role_arn = key_id = secret = None
        if has_role and has_keys:
            problems.append(
                f"{ROLE_ARN} and {ACCESS_KEY_ID}/{SECRET_ACCESS_KEY} are both set; the secret must "
                "hold one auth mode's keys only (recreate it rather than update it after a mode switch)"
            )
        elif has_keys:
            mode = ACCESS_KEY
            key_id = read(ACCESS_KEY_ID, _access_key_id_problem)
            secret = read(SECRET_ACCESS_KEY, None)
        elif has_role:
            role_arn = read(ROLE_ARN, _role_arn_problem)
        else:
            problems.append(
                f"{ROLE_ARN}: is required in OIDC mode (or set {ACCESS_KEY_ID} and "
                f"{SECRET_ACCESS_KEY} for access-key mode)"
            )

        endpoint = env.get(ENDPOINT_URL) or None
        if endpoint is not None and (allowed := _endpoint_problem(endpoint)):
            problems.append(f"{ENDPOINT_URL}: {endpoint!r} is not valid; expected {allowed}")

        if problems:
            raise SettingsError(problems)
        return cls(
            region=region,
            bucket=bucket,
            input_prefix=input_prefix,
            output_prefix=output_prefix,
            auth_mode=mode,
            role_arn=role_arn,
            access_key_id=key_id,
            secret_access_key=secret,
            endpoint_url=endpoint,
        )
