"""The data job end to end against moto's S3 in IAM enforcement mode, as the runtime principal
holding exactly `infra.iam.runtime_policy`, in both auth modes (an IAM user's access key; a role
assumed with a Modal identity token)."""

from __future__ import annotations

import hashlib
import json

import botocore.exceptions
import numpy as np
import pytest

from modal_app import contract
from modal_app.aws import s3_client
from modal_app.context import JobContext
from modal_app.errors import PayloadError, SettingsError, StorageError
from modal_app.executor import execute
from modal_app.settings import Settings
from modal_app.storage import S3JobStore
from tests.fakes.aws_fixtures import MotoServer
from tests.modal_app.conftest import (
    INPUT_PREFIX,
    MATRIX,
    OUTPUT_PREFIX,
    VALUES,
    Recorder,
    Stack,
    modal_subject,
    modal_token,
    npy_bytes,
)


def stats_payload(job_id: str, input_key: str = f"{INPUT_PREFIX}matrix.npy", **extra) -> dict:
    return {"job": "array_stats", "job_id": job_id, "input_key": input_key, **extra}


def expected_columns(array: np.ndarray, quantiles=(0.25, 0.5, 0.75)) -> list[dict]:
    x = np.asarray(array, dtype=np.float64).reshape(len(array), -1)
    return [
        {
            "column": c,
            "count": x.shape[0],
            "mean": pytest.approx(float(x[:, c].mean())),
            "std": pytest.approx(float(x[:, c].std())),
            "min": pytest.approx(float(x[:, c].min())),
            "max": pytest.approx(float(x[:, c].max())),
            "quantiles": pytest.approx([float(v) for v in np.quantile(x[:, c], quantiles)]),
        }
        for c in range(x.shape[1])
    ]


def test_job_reads_its_input_and_writes_one_result_under_the_output_prefix(stack: Stack) -> None:
    before = stack.snapshot()

    result = execute(stats_payload("run-1"), JobContext(environ=stack.environ))

    assert result["status"] == "written"
    assert result["output_key"] == f"{OUTPUT_PREFIX}run-1/{result['input_digest']}.json"
    assert (result["rows"], result["columns"]) == MATRIX.shape
    assert result["stats"] == expected_columns(MATRIX)
    after = stack.snapshot()
    assert set(after) - set(before) == {result["output_key"]}
    assert {k: after[k] for k in before} == before  # inputs untouched
    stored = json.loads(stack.read(result["output_key"]))
    assert stored["stats"] == expected_columns(MATRIX)
    assert stored["job_id"] == "run-1" and stored["input_key"] == f"{INPUT_PREFIX}matrix.npy"
    # The result records what it was computed from: the very bytes of the input.
    assert stored["input_sha256"] == hashlib.sha256(npy_bytes(MATRIX)).hexdigest()
    assert stored["input_etag"] == before[f"{INPUT_PREFIX}matrix.npy"].strip('"')
    assert stored["estimate"]["seconds"]["CPU"] < stored["estimate"]["budget_seconds"]


def test_json_input_and_custom_quantiles(access_key_stack: Stack) -> None:
    payload = stats_payload("json-1", f"{INPUT_PREFIX}values.json", quantiles=[0.0, 0.9, 1.0])

    result = execute(payload, JobContext(environ=access_key_stack.environ))

    assert result["stats"] == expected_columns(np.array(VALUES), (0.0, 0.9, 1.0))
    assert result["stats"][0]["quantiles"][0] == min(VALUES)
    assert result["stats"][0]["quantiles"][2] == max(VALUES)


def test_retry_with_the_same_job_id_reads_and_writes_nothing(
    stack: Stack, recorder: Recorder
) -> None:
    first = execute(stats_payload("retry-1"), recorder.context())
    written = stack.snapshot()

    again = execute(stats_payload("retry-1"), recorder.context())

    assert first["status"] == "written"
    assert again == {
        "job": "array_stats",
        "status": "already_done",
        "job_id": "retry-1",
        "output_key": first["output_key"],
        "input_digest": first["input_digest"],
    }
    assert stack.snapshot() == written
    # Two listings (the input's size and ETag, the job's folder), no read and no write.
    second_try = recorder.stores[1].calls
    assert second_try == [
        ("stat", f"{INPUT_PREFIX}matrix.npy"),
        ("list_keys", f"{OUTPUT_PREFIX}retry-1/"),
    ]


def test_racing_retries_write_the_result_once(access_key_stack: Stack) -> None:
    """Two tries that both saw "not done yet": the conditional put lets only the first write."""

    class Blind(S3JobStore):
        def list_keys(self, prefix: str, limit: int) -> list[str]:
            return []

    def blind_store(settings: Settings, environ, session: str) -> S3JobStore:
        return Blind(s3_client(settings, environ, session), settings.bucket)

    environ = access_key_stack.environ
    first = execute(stats_payload("race-1"), JobContext(environ, store_factory=blind_store))
    kept = access_key_stack.read(first["output_key"])

    second = execute(stats_payload("race-1"), JobContext(environ, store_factory=blind_store))

    assert (first["status"], second["status"]) == ("written", "already_done")
    assert access_key_stack.read(first["output_key"]) == kept
    assert json.loads(kept)["compute_seconds"] == first["compute_seconds"]


def test_a_missing_or_unreadable_input_is_a_payload_error_and_writes_nothing(
    access_key_stack: Stack,
) -> None:
    before = access_key_stack.snapshot()
    context = JobContext(environ=access_key_stack.environ)

    with pytest.raises(PayloadError, match="no object") as missing:
        execute(stats_payload("m-1", f"{INPUT_PREFIX}absent.npy"), context)
    with pytest.raises(PayloadError, match="not JSON numbers") as broken:
        execute(stats_payload("m-2", f"{INPUT_PREFIX}broken.json"), context)

    assert missing.value.field == broken.value.field == "input_key"
    assert access_key_stack.snapshot() == before


def test_the_apps_credentials_can_do_only_what_the_runtime_policy_allows(stack: Stack) -> None:
    settings = Settings.from_env(stack.environ)
    s3 = s3_client(settings, stack.environ, "policy-check")
    bucket = stack.bucket

    def denied(call, **kwargs) -> bool:
        try:
            call(Bucket=bucket, **kwargs)
        except botocore.exceptions.ClientError as error:
            return error.response["Error"]["Code"] in ("AccessDenied", "403")
        return False

    # What the app does: all allowed.
    assert s3.get_object(Bucket=bucket, Key=f"{INPUT_PREFIX}matrix.npy")["Body"].read()
    s3.put_object(Bucket=bucket, Key=f"{OUTPUT_PREFIX}probe.json", Body=b"{}", IfNoneMatch="*")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{OUTPUT_PREFIX}probe.json")
    assert [o["Key"] for o in listed["Contents"]] == [f"{OUTPUT_PREFIX}probe.json"]
    # Everything else: denied.
    assert denied(s3.get_object, Key="private/matrix.npy")
    assert denied(s3.get_object, Key=f"{OUTPUT_PREFIX}probe.json")  # outputs are write-only
    assert denied(s3.head_object, Key=f"{OUTPUT_PREFIX}probe.json")
    assert denied(s3.put_object, Key=f"{INPUT_PREFIX}planted.npy", Body=b"x")
    assert denied(s3.put_object, Key="private/planted", Body=b"x")
    assert denied(s3.delete_object, Key=f"{OUTPUT_PREFIX}probe.json")
    assert denied(s3.delete_object, Key=f"{INPUT_PREFIX}matrix.npy")
    assert f"{INPUT_PREFIX}planted.npy" not in stack.snapshot()


def test_the_store_cannot_read_outside_the_input_prefix_even_if_asked(stack: Stack) -> None:
    """Key checks aside, the runtime policy itself stops a read of another prefix."""
    settings = Settings.from_env(stack.environ)
    store = S3JobStore(s3_client(settings, stack.environ, "direct"), stack.bucket)

    with pytest.raises(StorageError, match="GetObject 'private/matrix.npy' failed: AccessDenied"):
        store.read_input("private/matrix.npy", "input_key", 1024)


def test_enforcement_is_really_on(moto_server: MotoServer, bucket: str) -> None:
    """Guards the tests above from passing vacuously against a permissive server."""
    unrelated = {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}
    nobody = moto_server.create_principal({"Version": "2012-10-17", "Statement": [unrelated]})
    s3 = moto_server.client("s3", nobody.credentials)
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.get_object(Bucket=bucket, Key=f"{INPUT_PREFIX}matrix.npy")


@pytest.mark.parametrize(
    "subject",
    [
        modal_subject(environment="prod"),
        modal_subject(app="another-app"),
        modal_subject(function="other_function"),
    ],
    ids=["other-environment", "other-app", "other-function"],
)
def test_an_identity_token_of_another_function_cannot_assume_the_role(
    oidc_stack: Stack, subject: str
) -> None:
    environ = oidc_stack.environ | {contract.IDENTITY_TOKEN: modal_token(subject)}
    before = oidc_stack.snapshot()

    with pytest.raises(StorageError, match="could not assume .*AccessDenied"):
        execute(stats_payload("stolen-1"), JobContext(environ=environ))

    assert oidc_stack.snapshot() == before


def test_oidc_mode_without_an_identity_token_says_why(oidc_stack: Stack) -> None:
    environ = {k: v for k, v in oidc_stack.environ.items() if k != contract.IDENTITY_TOKEN}

    with pytest.raises(SettingsError, match=contract.IDENTITY_TOKEN):
        execute(stats_payload("no-token-1"), JobContext(environ=environ))


def test_run_gpu_job_runs_the_data_job_with_the_containers_environment(
    oidc_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed entry point, run in-process: it reads the secret from the environment."""
    from modal_app.app import run_gpu_job

    for name, value in oidc_stack.environ.items():
        monkeypatch.setenv(name, value)

    result = run_gpu_job.local(stats_payload("entry-1"))

    assert result["status"] == "written"
    assert result["output_key"] in oidc_stack.snapshot()


def test_reusing_a_job_id_with_a_different_input_is_refused_naming_both(stack: Stack) -> None:
    first = execute(stats_payload("reuse-1"), JobContext(environ=stack.environ))
    written = stack.snapshot()
    other_key = f"{INPUT_PREFIX}values.json"

    with pytest.raises(PayloadError) as other_input:
        execute(stats_payload("reuse-1", other_key), JobContext(environ=stack.environ))
    with pytest.raises(PayloadError) as other_quantiles:
        execute(stats_payload("reuse-1", quantiles=[0.9]), JobContext(environ=stack.environ))
    again = execute(stats_payload("reuse-1"), JobContext(environ=stack.environ))

    error = other_input.value
    assert error.field == "job_id"
    assert f"{first['output_key']!r} (input digest {first['input_digest']})" in error.reason
    assert f"this call asks for {other_key!r}" in error.reason
    assert "Use a new job_id" in error.reason
    assert other_quantiles.value.field == "job_id"
    assert again["status"] == "already_done" and again["output_key"] == first["output_key"]
    assert stack.snapshot() == written  # nobody got, or overwrote, the first caller's result


def test_new_content_under_the_same_input_key_is_a_different_input(
    access_key_stack: Stack,
) -> None:
    context = JobContext(environ=access_key_stack.environ)
    key = f"{INPUT_PREFIX}matrix.npy"
    first = execute(stats_payload("content-1"), context)
    access_key_stack.server.client("s3").put_object(
        Bucket=access_key_stack.bucket, Key=key, Body=npy_bytes(MATRIX * 2)
    )

    with pytest.raises(PayloadError, match="already names a result of another input"):
        execute(stats_payload("content-1"), context)
    second = execute(stats_payload("content-2"), context)

    assert second["input_digest"] != first["input_digest"]
    assert second["input_sha256"] == hashlib.sha256(npy_bytes(MATRIX * 2)).hexdigest()


def test_an_input_replaced_after_it_was_listed_is_not_read(access_key_stack: Stack) -> None:
    """The read asks for the listed ETag (If-Match), so the hash in the result is of the bytes the
    digest names; a replaced input is a storage error a retry cures, not a wrong record."""
    s3 = access_key_stack.server.client("s3")
    key = f"{INPUT_PREFIX}matrix.npy"

    class Replacing(S3JobStore):
        def stat(self, key: str):
            listed = super().stat(key)
            s3.put_object(Bucket=access_key_stack.bucket, Key=key, Body=npy_bytes(MATRIX + 1))
            return listed

    def store(settings: Settings, environ, session: str) -> S3JobStore:
        return Replacing(s3_client(settings, environ, session), settings.bucket)

    before = access_key_stack.snapshot()
    context = JobContext(access_key_stack.environ, store_factory=store)
    with pytest.raises(StorageError, match=f"{key!r} changed while the job read it"):
        execute(stats_payload("replaced-1"), context)
    assert set(access_key_stack.snapshot()) == set(before)  # no result written
