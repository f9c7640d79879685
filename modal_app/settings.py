"""The runtime configuration of one container, read from the runtime secret's keys.

The keys, the auth modes and the rules for each value are the contract's (`modal_app.contract`),
which the Pulumi program builds the secret from, so the two can never drift.

Two ways to get AWS credentials, chosen by which keys the secret holds:
- OIDC (preferred): `AWS_ROLE_ARN`; the container trades Modal's identity token for short-lived
  credentials of that role. No long-lived key exists anywhere.
- access key: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` of a runtime IAM user, for workspaces
  without OIDC; the program rotates them.
A secret holding both is refused: it means a mode switch left the old mode's keys behind, and
the app must not guess which identity it runs as.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from modal_app.contract import (
    ACCESS_KEY,
    ACCESS_KEY_ID,
    ACCESS_KEY_KEYS,
    AWS_REGION,
    BUCKET,
    CREDENTIAL_KEYS,
    ENDPOINT_URL,
    INPUT_PREFIX,
    OIDC,
    OUTPUT_PREFIX,
    ROLE_ARN,
    SECRET_ACCESS_KEY,
    SECRET_NAME,
    AuthMode,
    bucket_problem,
    prefix_problem,
    prefixes_overlap,
    region_problem,
)
from modal_app.errors import SettingsError

_ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
_ENDPOINT = re.compile(r"^https?://[^\s/]+(?::\d+)?/?$")


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
        if input_prefix and output_prefix and prefixes_overlap(input_prefix, output_prefix):
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
