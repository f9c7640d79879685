"""The data job's pieces that need no bucket: reading arrays, confining keys, naming sessions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from modal_app import object_keys
from modal_app.accelerator import Accelerator
from modal_app.aws import session_name
from modal_app.errors import PayloadError
from modal_app.jobs.array_stats import MAX_COLUMNS, column_stats, load_array
from modal_app.settings import Settings
from tests.modal_app.conftest import COMMON, ROLE, npy_bytes

CPU = Accelerator("numpy-cpu", "test-cpu")


class Planted:
    """Unpickling this writes a file: proof of code execution if a loader ever unpickles."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize(
    ("data", "key", "shape"),
    [
        (npy_bytes(np.arange(6, dtype=np.int16)), "in/a.npy", (6, 1)),
        (npy_bytes(np.ones((4, 3), dtype=np.float32)), "in/a.npy", (4, 3)),
        (npy_bytes(np.array([True, False])), "in/a.npy", (2, 1)),
        (npy_bytes(np.asfortranarray(np.ones((2, 5)))), "in/a.npy", (2, 5)),
        (json.dumps([1, 2.5, -3]).encode(), "in/a.json", (3, 1)),
        (json.dumps([[1, 2], [3, 4], [5, 6]]).encode(), "in/a.json", (3, 2)),
    ],
)
def test_numeric_arrays_load_as_rows_by_columns(data: bytes, key: str, shape: tuple) -> None:
    array = load_array(data, key)
    assert array.shape == shape and array.dtype == np.float64


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        (b"not numpy", "in/a.npy", "is not a .npy file"),
        (npy_bytes(np.array(["a", "b"])), "in/a.npy", "holds <U1 values"),
        (npy_bytes(np.zeros((2, 2, 2))), "in/a.npy", "expected a non-empty 1-D or 2-D array"),
        (npy_bytes(np.zeros((0,))), "in/a.npy", "expected a non-empty 1-D or 2-D array"),
        (npy_bytes(np.zeros((1, MAX_COLUMNS + 1))), "in/a.npy", f"at most {MAX_COLUMNS}"),
        (npy_bytes(np.array([1.0, np.nan])), "in/a.npy", "NaN or infinite"),
        (b"[[1, 2], [3]]", "in/a.json", "is not JSON numbers"),
        (b'{"a": 1}', "in/a.json", "is not JSON numbers"),
        (b"[1, 2", "in/a.json", "is not JSON numbers"),
        (b"\xff\xfe", "in/a.json", "is not JSON numbers"),
        (b"7", "in/a.json", "expected a non-empty 1-D or 2-D array"),
    ],
)
def test_unusable_inputs_are_refused_naming_input_key(data: bytes, key: str, words: str) -> None:
    with pytest.raises(PayloadError) as error:
        load_array(data, key)
    assert error.value.field == "input_key" and words in str(error.value)


def test_a_pickle_inside_an_npy_file_is_never_run(tmp_path: Path) -> None:
    planted = Planted()
    planted.marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    np.save(buffer, np.array([planted], dtype=object), allow_pickle=True)

    with pytest.raises(PayloadError, match="is not a .npy file"):
        load_array(buffer.getvalue(), "in/evil.npy")
    assert not planted.marker.exists()


def test_statistics_match_numpy_column_by_column() -> None:
    x = np.random.default_rng(1).normal(size=(101, 4)) * [1, 10, 100, 0.1]

    (first, *_rest) = stats = column_stats(x, (0.1, 0.5), CPU)

    assert len(stats) == 4
    assert first["count"] == 101
    assert first["mean"] == pytest.approx(x[:, 0].mean())
    assert stats[2]["std"] == pytest.approx(x[:, 2].std())
    assert stats[3]["quantiles"] == pytest.approx(list(np.quantile(x[:, 3], [0.1, 0.5])))
    assert (stats[1]["min"], stats[1]["max"]) == (x[:, 1].min(), x[:, 1].max())


def settings() -> Settings:
    return Settings.from_env(COMMON | {"AWS_ROLE_ARN": ROLE})


@pytest.mark.parametrize(
    "key", ["inputs/a.npy", "inputs/2026/11/28/batch (1).json", "inputs/x=1,y=2.npy"]
)
def test_keys_under_the_input_prefix_are_accepted_unchanged(key: str) -> None:
    assert object_keys.input_key(settings(), "input_key", key) == key


def test_the_output_key_is_the_job_id_and_the_input_digest() -> None:
    digest = "0123456789abcdef" * 2
    key = object_keys.output_key(settings(), "run-7.a_b", digest)

    assert key == f"outputs/run-7.a_b/{digest}.json"
    assert object_keys.digest_of(key) == digest
    # One job's folder never lists another's: 'run-7' is not a prefix of 'run-7.a_b/'.
    assert not key.startswith(object_keys.job_prefix(settings(), "run-7"))
    with pytest.raises(PayloadError, match="job_id"):
        object_keys.output_key(settings(), "../x", digest)


def test_session_names_say_which_job_ran_and_fit_sts_limits() -> None:
    assert session_name("array_stats", "run-7") == "rentagpu-array_stats-run-7"
    assert session_name("healthcheck", None) == "rentagpu-healthcheck"
    assert len(session_name("array_stats", "x" * 128)) == 64
