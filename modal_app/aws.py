"""An S3 client for the runtime principal, and nothing else.

OIDC mode trades the container's Modal identity token for the runtime role's short-lived
credentials (AssumeRoleWithWebIdentity); access-key mode uses the secret's keys. Clients are built
from an explicit session with explicit credentials, never boto3's default chain, so a stray
`~/.aws` profile or instance role can never stand in for the runtime principal.
The endpoint is injectable (`AWS_ENDPOINT_URL`, read into `Settings`) so tests point it at moto.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from modal_app import contract
from modal_app.errors import SettingsError, StorageError
from modal_app.settings import Settings

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=10,
    read_timeout=120,
)
# The identity token is the only proof of identity AssumeRoleWithWebIdentity takes; signing it
# would need credentials the container does not (and must not) have.
_UNSIGNED_CONFIG = _CLIENT_CONFIG.merge(Config(signature_version=UNSIGNED))
_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


def session_name(job: str, job_id: str | None) -> str:
    """RoleSessionName: CloudTrail shows it on every call, so it names the job being done."""
    name = f"rentagpu-{job}-{job_id}" if job_id else f"rentagpu-{job}"
    return _SESSION_NAME_UNSAFE.sub("-", name)[:64]


def _oidc_credentials(
    boto: boto3.session.Session, settings: Settings, environ: Mapping[str, str], session: str
) -> dict[str, Any]:
    token = environ.get(contract.IDENTITY_TOKEN, "")
    if not token:
        raise SettingsError(
            [
                f"{contract.IDENTITY_TOKEN}: is not set; Modal injects it only into deployed apps whose "
                "name is at most 64 letters, digits, '-', '.', '_' (or use access-key mode)"
            ]
        )
    sts = boto.client(
        "sts",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=_UNSIGNED_CONFIG,
    )
    try:
        answer = sts.assume_role_with_web_identity(
            RoleArn=settings.role_arn,
            RoleSessionName=session,
            WebIdentityToken=token,
            DurationSeconds=3600,
        )
    except (ClientError, BotoCoreError) as error:
        # The error names the role and the reason (trust policy mismatch, expired token); it
        # never contains the token itself.
        raise StorageError(
            f"could not assume {settings.role_arn} with the Modal identity token: {error}; check "
            "the role's trust policy pins this workspace, environment, app and function"
        ) from None
    creds = answer["Credentials"]
    return {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


def s3_client(settings: Settings, environ: Mapping[str, str], session: str) -> Any:
    """An S3 client acting as the runtime principal of `settings.auth_mode`."""
    # A session of its own (boto3's default one is shared, mutable state), holding no
    # credentials: each client gets exactly the ones it should use.
    boto = boto3.session.Session(region_name=settings.region)
    if settings.auth_mode == contract.OIDC:
        credentials = _oidc_credentials(boto, settings, environ, session)
    else:
        credentials = {
            "aws_access_key_id": settings.access_key_id,
            "aws_secret_access_key": settings.secret_access_key,
        }
    return boto.client(
        "s3", endpoint_url=settings.endpoint_url, config=_CLIENT_CONFIG, **credentials
    )
