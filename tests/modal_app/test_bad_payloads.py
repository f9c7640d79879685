"""Every bad payload is refused with a `PayloadError` naming the field, before anything is read or
written: no store is opened (so no S3 call at all) and the bucket is unchanged."""

from __future__ import annotations

import pytest

from modal_app.errors import PayloadError, SettingsError
from modal_app.executor import execute
from modal_app.registry import JOBS
from modal_app.settings import BUCKET
from tests.modal_app.conftest import INPUT_PREFIX, OUTPUT_PREFIX, Recorder, Stack

GOOD_KEY = f"{INPUT_PREFIX}matrix.npy"


def stats(**fields) -> dict:
    return {"job": "array_stats", "job_id": "job-1", "input_key": GOOD_KEY, **fields}


# (payload, field the error must name, words the message must contain)
BAD_PAYLOADS = [
    ("array_stats", "payload", "must be a dict"),
    (["job", "healthcheck"], "payload", "must be a dict"),
    (None, "payload", "must be a dict"),
    ({1: "healthcheck"}, "payload", "field names must be strings"),
    ({}, "job", "is required"),
    ({"job": "shell", "cmd": "rm -rf /"}, "job", "not a known job"),
    ({"job": "modal_app.jobs.matmul"}, "job", "not a known job"),
    ({"job": ["matmul"]}, "job", "not a known job"),
    ({"job": "healthcheck", "verbose": True}, "verbose", "not a field of job 'healthcheck'"),
    ({"job": "matmul", "n": "4096"}, "n", "must be a whole number"),
    ({"job": "matmul", "n": True}, "n", "must be a whole number"),
    ({"job": "matmul", "n": 4096.0}, "n", "must be a whole number"),
    ({"job": "matmul", "n": 0}, "n", "out of range"),
    ({"job": "matmul", "n": 10**9}, "n", "out of range"),
    ({"job": "matmul", "n": 8192}, "n", "out of range on a CPU"),
    ({"job": "matmul", "dtype": "int8"}, "dtype", "expected one of: bfloat16"),
    ({"job": "matmul", "iters": -1}, "iters", "out of range"),
    ({"job": "matmul", "iter": 5}, "iter", "its fields are: n, dtype, iters"),
    ({"job": "array_stats", "input_key": GOOD_KEY}, "job_id", "is required"),
    ({"job": "array_stats", "job_id": "job-1"}, "input_key", "is required"),
    (stats(job_id=7), "job_id", "must be a string"),
    (stats(job_id=""), "job_id", "is not valid"),
    (stats(job_id="../../private/x"), "job_id", "is not valid"),
    (stats(job_id="a/b"), "job_id", "is not valid"),
    (stats(job_id="x" * 129), "job_id", "at most 128"),
    (stats(input_key=None), "input_key", "must be a string"),
    (stats(input_key="private/matrix.npy"), "input_key", "outside the input prefix"),
    (stats(input_key=f"{OUTPUT_PREFIX}x.npy"), "input_key", "outside the input prefix"),
    (stats(input_key=f"{INPUT_PREFIX}../../private/matrix.npy"), "input_key", "'..' path segment"),
    (stats(input_key=f"{INPUT_PREFIX}a//matrix.npy"), "input_key", "empty"),
    (stats(input_key=f"/{GOOD_KEY}"), "input_key", "outside the input prefix"),
    (stats(input_key=INPUT_PREFIX), "input_key", "outside the input prefix"),
    (stats(input_key=f"s3://other-bucket/{GOOD_KEY}"), "input_key", "not a URL"),
    (stats(input_key=f"{INPUT_PREFIX}matrix.npy\n"), "input_key", "control characters"),
    (stats(input_key=f"{INPUT_PREFIX}data.csv"), "input_key", "must end with one of: .npy, .json"),
    (stats(input_key=INPUT_PREFIX + "x" * 1100 + ".npy"), "input_key", "at most 1024"),
    (stats(bucket="other-bucket"), "bucket", "not a field of job 'array_stats'"),
    (stats(quantiles="0.5"), "quantiles", "must be a list"),
    (stats(quantiles=[]), "quantiles", "expected 1-16"),
    (stats(quantiles=[0.5, 1.5]), "quantiles[1]", "out of range"),
    (stats(quantiles=[0.5, "0.9"]), "quantiles[1]", "must be a number"),
    (stats(quantiles=[float("nan")]), "quantiles[0]", "out of range"),
]


@pytest.mark.parametrize(("payload", "field", "words"), BAD_PAYLOADS)
def test_bad_payload_is_refused_naming_the_field_and_nothing_is_touched(
    access_key_stack: Stack, payload: object, field: str, words: str
) -> None:
    # One auth mode is enough: payloads are checked before credentials are even looked at.
    stack = access_key_stack
    recorder = Recorder(stack.environ, [])
    before = stack.snapshot()

    with pytest.raises(PayloadError) as refused:
        execute(payload, recorder.context())

    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert words in str(refused.value)
    assert recorder.stores == []  # no store was even opened: no credentials, no S3 call
    assert stack.snapshot() == before


def test_the_table_covers_every_job() -> None:
    named = [p.get("job") for p, _, _ in BAD_PAYLOADS if isinstance(p, dict)]
    assert set(JOBS) <= {name for name in named if isinstance(name, str)}


def test_a_bad_runtime_secret_stops_the_data_job_before_any_call(stack: Stack) -> None:
    recorder = Recorder({k: v for k, v in stack.environ.items() if k != BUCKET}, [])
    before = stack.snapshot()

    with pytest.raises(SettingsError, match=f"{BUCKET}: is required"):
        execute(stats(), recorder.context())

    assert recorder.stores == []
    assert stack.snapshot() == before
