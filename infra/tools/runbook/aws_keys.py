"""The runtime IAM user's access keys as the runbook sees them: in AWS and in the stack's state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.core import names
from infra.core import resource_types as types
from infra.core.errors import RotationError
from infra.core.secrets import SecretStr, mask_id
from infra.tools.runbook.driver import StateResource
from modal_app import contract

# Where boto3 is pointed (moto in tests): the variable the AWS SDKs and CLI read themselves.
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"


@dataclass(frozen=True)
class AwsKey:
    id: SecretStr = field(repr=False)
    secret: SecretStr | None = field(repr=False)

    @property
    def masked(self) -> str:
        return mask_id(self.id.reveal())


class AwsAccess:
    """boto3 clients: the operator's (default credential chain) or a given key's; the endpoint
    comes from AWS_ENDPOINT_URL, so the same code runs against moto."""

    AUTH_FAILURES = frozenset(
        {"InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"}
    )

    def __init__(self, region: str, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.region = region
        self.endpoint_url = env.get(ENDPOINT_VARIABLE) or None
        self._clients: dict[tuple[str, str], Any] = {}  # building a client loads its model: ~0.3 s

    def client(self, service: str, key: AwsKey | None = None) -> Any:
        cache_key = (service, key.id.reveal() if key else "")
        if cache_key not in self._clients:
            self._clients[cache_key] = self._new_client(service, key)
        return self._clients[cache_key]

    def _new_client(self, service: str, key: AwsKey | None) -> Any:
        import boto3
        from botocore.config import Config

        credentials = {}
        if key is not None:
            credentials = {
                "aws_access_key_id": key.id.reveal(),
                "aws_secret_access_key": key.secret.reveal() if key.secret else "",
            }
        session = boto3.session.Session(region_name=self.region, **credentials)
        config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
        return session.client(service, endpoint_url=self.endpoint_url, config=config)

    def access_key_ids(self, user_name: str) -> list[str]:
        """Ids of the user's access keys, with the operator's credentials."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            listed = self.client("iam").list_access_keys(UserName=user_name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "?")
            if code == "NoSuchEntity":
                return []
            raise RotationError(
                f"AWS refused iam:ListAccessKeys on user '{user_name}' ({code}); run with "
                "credentials that may read the runtime user (the stack's deploy role)"
            ) from None
        except BotoCoreError as error:
            raise RotationError(f"could not reach AWS IAM ({type(error).__name__})") from None
        return [k["AccessKeyId"] for k in listed.get("AccessKeyMetadata", [])]

    def key_check(self, key: AwsKey, bucket: str, prefix: str) -> str:
        """ "works", "rejected" (AWS does not know the key) or "failed: CODE", by a
        ListObjectsV2 on the input prefix, the call the app makes first."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client("s3", key).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "?")
            return "rejected" if code in self.AUTH_FAILURES else f"failed: {code}"
        except BotoCoreError as error:
            return f"failed: {type(error).__name__}"
        return "works"


@dataclass(frozen=True)
class StackKeys:
    current_name: str
    current: AwsKey | None
    others: dict[str, AwsKey]
    modal_secret_key_id: str | None


def stack_keys(resources: list[StateResource], environment: str, serial: int) -> StackKeys:
    prefix = names.runtime_access_key_resource(environment, "")
    current_name = names.runtime_access_key_resource(environment, serial)
    current, others, secret_key_id = None, {}, None
    for resource in resources:
        if resource.type == types.AWS_ACCESS_KEY and resource.name.startswith(prefix):
            secret = resource.outputs.get("secret")
            key = AwsKey(SecretStr(resource.id), SecretStr(secret) if secret else None)
            if resource.name == current_name:
                current = key
            else:
                others[resource.name] = key
        elif resource.type == types.MODAL_SECRET:
            values = resource.outputs.get("values") or {}
            secret_key_id = values.get(contract.ACCESS_KEY_ID) if isinstance(values, dict) else None
    return StackKeys(current_name, current, others, secret_key_id)
