"""`rotate aws-key`: a new runtime access key, live and checked before the old one goes.

Bumping `accessKeySerial` names a new logical `aws.iam.AccessKey`, so `pulumi up` creates the new
key, writes it into the Modal secret (and the deploy stage smoke-tests the app) and deletes the old
key only at the end of a successful update; a failure anywhere leaves the old key in place. The
command then checks in AWS that only the new key exists, that it works (ListObjectsV2 on the input
prefix) and that the old one is refused. A failed `up` is reported with the old key's state checked
for real, and `--resume` finishes it without a new bump.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from infra.core import names
from infra.core.config import AwsConfig, parse_config
from infra.core.config_schema import full_key
from infra.core.errors import RentagpuError, RotationError, StackUpError
from infra.core.secrets import mask_id
from infra.tools.runbook.aws_keys import AwsAccess, AwsKey, stack_keys
from infra.tools.runbook.driver import StackDriver
from infra.tools.runbook.steps import Steps
from modal_app import contract


@dataclass(frozen=True)
class _Rotation:
    """What every step of one rotation works on."""

    stack: str
    environment: str
    aws_config: AwsConfig
    user: str
    aws: AwsAccess

    @property
    def resume_hint(self) -> str:
        return f"python -m infra rotate aws-key --stack {self.stack} --resume"

    def check(self, key: AwsKey) -> str:
        return self.aws.key_check(key, self.aws_config.bucket, self.aws_config.input_prefix)


def rotate_aws_key(
    driver: StackDriver,
    *,
    resume: bool,
    out: TextIO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Rotate the runtime access key of an access-key-mode stack (see the module docstring)."""
    stack = driver.stack
    steps = Steps(out, 5)
    steps.step(f"Check that stack '{stack}' runs with an access key")
    cfg = parse_config(stack, driver.get_config())
    if cfg.aws.auth_mode != contract.ACCESS_KEY:
        raise RotationError(
            f"stack '{stack}' uses awsAuth=oidc: the app assumes its role with Modal's identity "
            "token, so there is no long-lived key to rotate"
        )
    user = names.runtime_user_name(cfg.environment)
    rotation = _Rotation(stack, cfg.environment, cfg.aws, user, AwsAccess(cfg.aws.region, environ))
    steps.say(f"runtime user '{user}', accessKeySerial {cfg.aws.access_key_serial}")

    steps.step("Find the key in use")
    old_keys = _old_keys(driver, rotation, resume, steps)

    serial = cfg.aws.access_key_serial
    if resume:
        steps.step(f"Resume: accessKeySerial stays {serial}")
    else:
        serial += 1
        steps.step(f"Bump accessKeySerial {cfg.aws.access_key_serial} -> {serial}")
        driver.set_config(full_key("accessKeySerial"), str(serial), secret=False)

    steps.step(
        "pulumi up: create the new key, write it into the Modal secret, smoke-test, "
        "and only then delete the old key"
    )
    try:
        driver.up()
    except StackUpError as error:
        raise RotationError(_failed_up(rotation, old_keys, error)) from None

    steps.step("Verify in AWS: only the new key exists, it works, the old one is refused")
    new = _verify(driver, rotation, serial, old_keys)
    steps.say(f"AWS holds only {new.masked}; ListObjectsV2 with it works")
    steps.say("old key(s) refused: " + ", ".join(k.masked for k in old_keys.values()))
    steps.say(
        f"Modal secret '{names.RUNTIME_SECRET_NAME}' in '{rotation.environment}' carries "
        f"{new.masked}"
    )


def _old_keys(
    driver: StackDriver, rotation: _Rotation, resume: bool, steps: Steps
) -> dict[str, AwsKey]:
    """The keys this rotation replaces, by logical name; refuses a state it cannot rotate."""
    before = stack_keys(
        driver.state_resources(), rotation.environment, rotation.aws_config.access_key_serial
    )
    live = rotation.aws.access_key_ids(rotation.user)
    steps.say(
        f"AWS holds {len(live)} key(s) for '{rotation.user}': " + ", ".join(map(mask_id, live))
    )
    if resume:
        old_keys = dict(before.others)
        if not old_keys and before.current is None:
            raise RotationError(
                f"stack '{rotation.stack}' state holds no runtime key; run `pulumi up`"
            )
    else:
        if before.others:
            listed = ", ".join(sorted(before.others))
            raise RotationError(
                f"a previous rotation did not finish: the state still holds {listed} next to "
                f"{before.current_name}. Finish it first: {rotation.resume_hint}"
            )
        if before.current is None:
            raise RotationError(
                f"stack '{rotation.stack}' state has no {before.current_name}; run `pulumi up` "
                "first"
            )
        old_keys = {before.current_name: before.current}
    for name, key in old_keys.items():
        steps.say(f"old key {key.masked} ({name})")
    return old_keys


def _failed_up(rotation: _Rotation, old_keys: Mapping[str, AwsKey], error: Exception) -> str:
    """What a failed `up` left: each old key checked for real, and how to finish."""
    lines = [str(error), "The old key was not deleted:"]
    try:
        still_live = set(rotation.aws.access_key_ids(rotation.user))
    except RentagpuError as check_error:
        lines.append(f"  (could not list the keys in AWS to confirm: {check_error})")
        still_live = {key.id.reveal() for key in old_keys.values()}
    for name, key in old_keys.items():
        exists = key.id.reveal() in still_live
        check = rotation.check(key) if exists and key.secret else "not checked"
        lines.append(
            f"  {key.masked} ({name}): "
            + ("exists in AWS" if exists else "MISSING in AWS")
            + f", ListObjectsV2 with it: {check}"
        )
    lines.append(
        "The Modal secret keeps the key Pulumi last wrote. Fix the cause, then finish with: "
        f"{rotation.resume_hint} (do not bump the serial again)"
    )
    return "\n".join(lines)


def _verify(
    driver: StackDriver, rotation: _Rotation, serial: int, old_keys: Mapping[str, AwsKey]
) -> AwsKey:
    """Only the new key exists in AWS, it works, the old ones are refused, Modal carries it."""
    after = stack_keys(driver.state_resources(), rotation.environment, serial)
    new = after.current
    if new is None:
        raise RotationError(f"the state has no {after.current_name} after the update")
    problems = []
    live = rotation.aws.access_key_ids(rotation.user)
    if live != [new.id.reveal()]:
        problems.append(
            f"AWS holds {', '.join(map(mask_id, live)) or 'no key'} for '{rotation.user}', "
            f"expected only {new.masked}"
        )
    result = rotation.check(new)
    if result != "works":
        where = f"s3://{rotation.aws_config.bucket}/{rotation.aws_config.input_prefix}"
        problems.append(f"ListObjectsV2 on {where} with {new.masked}: {result}")
    for name, key in old_keys.items():
        if key.secret is not None:
            check = rotation.check(key)
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
    return new
