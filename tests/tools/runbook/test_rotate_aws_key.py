"""`rotate aws-key` against moto (IAM enforcement) and the fake Modal server: the new key is created
and written into the Modal secret before the old key is deleted, both work in between, only the
new one is left, and a failure midway leaves the old key working."""

from __future__ import annotations

from typing import Any

from grpclib import Status

from infra.core import names
from infra.core.config import RawValue
from infra.core.errors import DeployError
from tests.fakes.aws_fixtures import Credentials, MotoServer
from tests.fakes.modal_fixtures import FakeModal
from tests.tools.runbook.conftest import SECRETS_PLANTED
from tests.tools.runbook.support import DEPLOY_TYPE, InProcessStack, assert_never_shown, run_cli

USER = names.runtime_user_name("dev")
ACCESS_KEY_TYPE = "aws:iam/accessKey:AccessKey"


def live_key(stack: InProcessStack) -> Credentials:
    """The runtime key Pulumi's state records for the current serial."""
    serial = stack.config.get("rentagpu:accessKeySerial", RawValue("1")).value
    record = stack.engine.state[f"dev-runtime-key-{serial}"]
    return Credentials(record.id, record.outputs["secret"])


def keys_in_aws(moto: MotoServer) -> list[str]:
    listed = moto.client("iam").list_access_keys(UserName=USER)["AccessKeyMetadata"]
    return [k["AccessKeyId"] for k in listed]


def s3_answer(moto: MotoServer, key: Credentials, bucket: str) -> str:
    """What the app's first call (ListObjectsV2 on its input prefix) gets with `key`."""
    from botocore.exceptions import ClientError

    try:
        listed = moto.client("s3", key).list_objects_v2(
            Bucket=bucket, Prefix="jobs/input/", MaxKeys=5
        )
    except ClientError as error:
        return error.response["Error"]["Code"]
    return "ok: " + ",".join(o["Key"] for o in listed.get("Contents", []))


def modal_key_id(modal: FakeModal) -> str:
    return modal.state.secret_values("dev", "rentagpu-runtime")["AWS_ACCESS_KEY_ID"]


def bucket_of(stack: InProcessStack) -> str:
    return stack.config["rentagpu:bucket"].value


def secret_values(*keys: Credentials) -> list[str]:
    return [v for k in keys for v in (k.access_key_id, k.secret_access_key)]


def drivers(stack: InProcessStack) -> dict[str, Any]:
    return {"dev": stack}


def test_the_new_key_is_in_use_before_the_old_one_goes_and_only_the_new_one_is_left(
    key_stack: InProcessStack, aws_operator: MotoServer, modal_env: FakeModal
) -> None:
    bucket = bucket_of(key_stack)
    old = live_key(key_stack)
    assert keys_in_aws(aws_operator) == [old.access_key_id]
    assert modal_key_id(modal_env) == old.access_key_id

    seen: dict[str, Any] = {}

    def at_old_key_deletion(key_id: str) -> None:
        # The moment Pulumi deletes the old key: everything after it already uses the new one.
        new = live_key(key_stack)
        seen["deleting"] = key_id == old.access_key_id
        seen["keys in AWS"] = sorted(keys_in_aws(aws_operator))
        seen["old works"] = s3_answer(aws_operator, old, bucket)
        seen["new works"] = s3_answer(aws_operator, new, bucket)
        seen["modal has new"] = modal_key_id(modal_env) == new.access_key_id

    key_stack.engine.handlers[ACCESS_KEY_TYPE].before_delete = at_old_key_deletion
    code, output = run_cli(["rotate", "aws-key", "--stack", "dev"], drivers(key_stack))
    assert code == 0, output

    new = live_key(key_stack)
    assert new.access_key_id != old.access_key_id
    assert seen == {
        "deleting": True,
        "keys in AWS": sorted([old.access_key_id, new.access_key_id]),
        "old works": "ok: jobs/input/job-1.json",
        "new works": "ok: jobs/input/job-1.json",
        "modal has new": True,
    }
    assert keys_in_aws(aws_operator) == [new.access_key_id]
    assert s3_answer(aws_operator, new, bucket) == "ok: jobs/input/job-1.json"
    assert s3_answer(aws_operator, old, bucket) == "InvalidAccessKeyId"
    assert modal_key_id(modal_env) == new.access_key_id
    assert key_stack.config["rentagpu:accessKeySerial"] == RawValue("2")
    assert "AWS holds only" in output
    assert_never_shown(output, [*secret_values(old, new), *SECRETS_PLANTED])


def test_a_failed_modal_secret_update_keeps_the_old_key_working_and_resume_finishes(
    key_stack: InProcessStack, aws_operator: MotoServer, modal_env: FakeModal
) -> None:
    bucket = bucket_of(key_stack)
    old = live_key(key_stack)
    modal_env.inject("SecretGetOrCreate", Status.PERMISSION_DENIED, times=1)

    code, output = run_cli(["rotate", "aws-key", "--stack", "dev"], drivers(key_stack))
    assert code == 2
    assert "The old key was not deleted" in output
    assert "exists in AWS, ListObjectsV2 with it: works" in output
    assert "rotate aws-key --stack dev --resume" in output
    # Checked for real: the app's secret still points at the old key, and it still works.
    assert modal_key_id(modal_env) == old.access_key_id
    assert s3_answer(aws_operator, old, bucket) == "ok: jobs/input/job-1.json"
    assert old.access_key_id in keys_in_aws(aws_operator)

    code, refused = run_cli(["rotate", "aws-key", "--stack", "dev"], drivers(key_stack))
    assert code == 2 and "did not finish" in refused
    assert key_stack.config["rentagpu:accessKeySerial"] == RawValue("2")  # not bumped twice

    code, resumed = run_cli(["rotate", "aws-key", "--stack", "dev", "--resume"], drivers(key_stack))
    assert code == 0, resumed
    new = live_key(key_stack)
    assert keys_in_aws(aws_operator) == [new.access_key_id]
    assert modal_key_id(modal_env) == new.access_key_id
    assert s3_answer(aws_operator, old, bucket) == "InvalidAccessKeyId"
    assert_never_shown(output + refused + resumed, [*secret_values(old, new), *SECRETS_PLANTED])


def test_a_failed_smoke_test_keeps_the_old_key(
    key_stack: InProcessStack, aws_operator: MotoServer, modal_env: FakeModal
) -> None:
    old = live_key(key_stack)
    assert key_stack.rendering is not None
    assert key_stack.rendering.of_type(DEPLOY_TYPE), "stage 4 (deploy + smoke) is not wired"

    def smoke() -> None:
        raise DeployError("the smoke job failed; the previous version is live again")

    key_stack.engine.handlers[DEPLOY_TYPE].smoke = smoke
    code, output = run_cli(["rotate", "aws-key", "--stack", "dev"], drivers(key_stack))
    assert code == 2
    assert "smoke job failed" in output and "The old key was not deleted" in output
    assert old.access_key_id in keys_in_aws(aws_operator)
    assert s3_answer(aws_operator, old, bucket_of(key_stack)) == "ok: jobs/input/job-1.json"
    assert_never_shown(output, [*secret_values(old), *SECRETS_PLANTED])


def test_an_oidc_stack_has_no_key_to_rotate(stacks: dict[str, InProcessStack]) -> None:
    code, output = run_cli(["rotate", "aws-key", "--stack", "prod"], stacks)
    assert code == 2 and "awsAuth=oidc" in output and "no long-lived key" in output
    assert stacks["prod"].ups == 0
