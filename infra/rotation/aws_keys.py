"""Rotating the runtime IAM user's access key (access-key mode); see the package docstring."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from infra import names
from infra.config import PROJECT, SecretStr
from infra.errors import RentagpuError, RotationError, StackUpError
from infra.rotation.common import Steps, mask
from infra.rotation.driver import (
    ACCESS_KEY_TYPE,
    ENDPOINT_VARIABLE,
    MODAL_SECRET_TYPE,
    StackDriver,
    StateResource,
)

# ---------------------------------------------------------------------------------------------
# AWS access keys
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsKey:
    id: SecretStr = field(repr=False)
    secret: SecretStr | None = field(repr=False)

    @property
    def masked(self) -> str:
        return mask(self.id.reveal())


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
class _StackKeys:
    current_name: str
    current: AwsKey | None
    others: dict[str, AwsKey]
    modal_secret_key_id: str | None


def _stack_keys(resources: list[StateResource], environment: str, serial: int) -> _StackKeys:
    prefix = f"{environment}-runtime-key-"
    current_name = f"{prefix}{serial}"
    current, others, secret_key_id = None, {}, None
    for resource in resources:
        if resource.type == ACCESS_KEY_TYPE and resource.name.startswith(prefix):
            secret = resource.outputs.get("secret")
            key = AwsKey(SecretStr(resource.id), SecretStr(secret) if secret else None)
            if resource.name == current_name:
                current = key
            else:
                others[resource.name] = key
        elif resource.type == MODAL_SECRET_TYPE:
            values = resource.outputs.get("values") or {}
            secret_key_id = values.get("AWS_ACCESS_KEY_ID") if isinstance(values, dict) else None
    return _StackKeys(current_name, current, others, secret_key_id)


def rotate_aws_key(
    driver: StackDriver,
    *,
    resume: bool,
    out: TextIO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Rotate the runtime access key of an access-key-mode stack (see the module docstring)."""
    from infra.config import parse_config

    stack = driver.stack
    steps = Steps(out, 5)
    resume_hint = f"python -m infra rotate aws-key --stack {stack} --resume"
    steps.step(f"Check that stack '{stack}' runs with an access key")
    cfg = parse_config(stack, driver.get_config())
    env, aws_cfg = cfg.environment, cfg.aws
    if aws_cfg.auth_mode != "access-key":
        raise RotationError(
            f"stack '{stack}' uses awsAuth=oidc: the app assumes its role with Modal's identity "
            "token, so there is no long-lived key to rotate"
        )
    user = names.runtime_user_name(env)
    aws = AwsAccess(aws_cfg.region, environ)
    steps.say(f"runtime user '{user}', accessKeySerial {aws_cfg.access_key_serial}")

    steps.step("Find the key in use")
    before = _stack_keys(driver.state_resources(), env, aws_cfg.access_key_serial)
    live = aws.access_key_ids(user)
    steps.say(f"AWS holds {len(live)} key(s) for '{user}': " + ", ".join(map(mask, live)))
    if resume:
        old_keys = dict(before.others)
        if not old_keys and before.current is None:
            raise RotationError(f"stack '{stack}' state holds no runtime key; run `pulumi up`")
    else:
        if before.others:
            listed = ", ".join(sorted(before.others))
            raise RotationError(
                f"a previous rotation did not finish: the state still holds {listed} next to "
                f"{before.current_name}. Finish it first: {resume_hint}"
            )
        if before.current is None:
            raise RotationError(
                f"stack '{stack}' state has no {before.current_name}; run `pulumi up` first"
            )
        old_keys = {before.current_name: before.current}
    for name, key in old_keys.items():
        steps.say(f"old key {key.masked} ({name})")

    if resume:
        steps.step(f"Resume: accessKeySerial stays {aws_cfg.access_key_serial}")
        serial = aws_cfg.access_key_serial
    else:
        serial = aws_cfg.access_key_serial + 1
        steps.step(f"Bump accessKeySerial {aws_cfg.access_key_serial} -> {serial}")
        driver.set_config(f"{PROJECT}:accessKeySerial", str(serial), secret=False)

    steps.step(
        "pulumi up: create the new key, write it into the Modal secret, smoke-test, "
        "and only then delete the old key"
    )
    try:
        driver.up()
    except StackUpError as error:
        lines = [str(error), "The old key was not deleted:"]
        try:
            still_live = set(aws.access_key_ids(user))
        except RentagpuError as check_error:
            lines.append(f"  (could not list the keys in AWS to confirm: {check_error})")
            still_live = {key.id.reveal() for key in old_keys.values()}
        for name, key in old_keys.items():
            exists = key.id.reveal() in still_live
            check = (
                aws.key_check(key, aws_cfg.bucket, aws_cfg.input_prefix)
                if exists and key.secret
                else "not checked"
            )
            lines.append(
                f"  {key.masked} ({name}): "
                + ("exists in AWS" if exists else "MISSING in AWS")
                + f", ListObjectsV2 with it: {check}"
            )
        lines.append(
            "The Modal secret keeps the key Pulumi last wrote. Fix the cause, then finish with: "
            f"{resume_hint} (do not bump the serial again)"
        )
        raise RotationError("\n".join(lines)) from None

    steps.step("Verify in AWS: only the new key exists, it works, the old one is refused")
    after = _stack_keys(driver.state_resources(), env, serial)
    problems = []
    new = after.current
    if new is None:
        raise RotationError(f"the state has no {after.current_name} after the update")
    live = aws.access_key_ids(user)
    if live != [new.id.reveal()]:
        problems.append(
            f"AWS holds {', '.join(map(mask, live)) or 'no key'} for '{user}', expected only "
            f"{new.masked}"
        )
    result = aws.key_check(new, aws_cfg.bucket, aws_cfg.input_prefix)
    if result != "works":
        problems.append(
            f"ListObjectsV2 on s3://{aws_cfg.bucket}/{aws_cfg.input_prefix} with {new.masked}: "
            f"{result}"
        )
    for name, key in old_keys.items():
        if key.secret is not None:
            check = aws.key_check(key, aws_cfg.bucket, aws_cfg.input_prefix)
            if check != "rejected":
                problems.append(f"old key {key.masked} ({name}): {check}, expected rejected")
    if after.others:
        problems.append("the state still holds " + ", ".join(sorted(after.others)))
    if after.modal_secret_key_id != new.id.reveal():
        problems.append(
            f"the Modal secret '{names.RUNTIME_SECRET_NAME}' was not last written with {new.masked}"
        )
    if problems:
        raise RotationError(
            "the update finished but the checks failed:\n  - " + "\n  - ".join(problems)
        )
    steps.say(f"AWS holds only {new.masked}; ListObjectsV2 with it works")
    steps.say("old key(s) refused: " + ", ".join(k.masked for k in old_keys.values()))
    steps.say(f"Modal secret '{names.RUNTIME_SECRET_NAME}' in '{env}' carries {new.masked}")
