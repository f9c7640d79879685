"""Sizes from headers: what a `.npy` header or a `.json` document declares is checked against the
limits before anything is allocated, so a small hostile file is a `PayloadError`, never a
`MemoryError`, a `RecursionError` or a container killed for memory.

`-k "npy and (header or bomb or huge or claims)"` selects the `.npy` ones."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from modal_app import arrays
from modal_app.errors import PayloadError
from modal_app.executor import execute
from tests.modal_app.conftest import INPUT_PREFIX, Recorder, Stack, npy_bytes

TRILLION = 10**12


def npy_claiming(shape: tuple[int, ...], data: bytes, descr: str = "<f8") -> bytes:
    """A .npy file whose header declares `shape` of `descr`, followed by `data` (maybe far less)."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def refused(data: bytes, key: str) -> PayloadError:
    with pytest.raises(PayloadError) as error:
        arrays.load_array(data, key)
    assert error.value.field == "input_key"
    return error.value


def test_npy_bomb_of_192_bytes_that_claims_10e12_float64_values_is_a_payload_error() -> None:
    bomb = npy_claiming((10**6, 10**6), bytes(64))
    assert len(bomb) == 192

    error = refused(bomb, "in/bomb.npy")

    assert f"declares {TRILLION:,} values" in error.reason
    assert f"at most {arrays.MAX_VALUES:,}" in error.reason


def test_npy_header_that_claims_more_data_than_the_file_holds_is_refused() -> None:
    short = npy_claiming((1000, 4), bytes(8 * 10))  # 32,000 bytes declared, 80 present

    error = refused(short, "in/short.npy")

    assert "declares shape (1000, 4) of <f8 in its header, 32,128 bytes" in error.reason
    assert "but is 208 bytes long" in error.reason


def test_npy_header_that_claims_less_data_than_the_file_holds_is_refused_too() -> None:
    error = refused(npy_claiming((2,), bytes(8 * 1000)), "in/long.npy")
    assert "but is 8,128 bytes long" in error.reason


def test_npy_huge_column_count_in_the_header_is_refused_before_allocating() -> None:
    error = refused(npy_claiming((1, 10**6), bytes(8)), "in/wide.npy")
    assert "has 1000000 columns; at most 1024" in error.reason


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 300, "readable header"),  # claims a 64 KiB header
        (b"\x93NUMPY\x07\x00" + bytes(100), "readable header"),
        (npy_claiming((3,), bytes(24), descr="|O"), "holds Python objects"),
        (npy_claiming((3,), bytes(3), descr="|V1"), "holds |V1 values; expected numbers"),
    ],
    ids=["header-longer-than-the-file", "unknown-version", "object-dtype", "void-dtype"],
)
def test_npy_header_that_is_broken_or_claims_a_non_numeric_dtype(data: bytes, words: str) -> None:
    assert words in refused(data, "in/odd.npy").reason


@pytest.mark.parametrize(
    "array",
    [
        np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        np.arange(5, dtype=">f4"),  # big-endian
        np.ones((2, 3), dtype=np.uint8),
    ],
    ids=["fortran-order", "big-endian", "uint8"],
)
def test_npy_files_whose_header_claims_hold_load_exactly(array: np.ndarray) -> None:
    loaded = arrays.load_array(npy_bytes(array), "in/a.npy")

    expected = array.reshape(array.shape[0], -1).astype(np.float64)
    assert loaded.flags.writeable and loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, expected)


def test_deeply_nested_json_is_a_payload_error_not_a_recursion_error() -> None:
    deep = b"[" * 100_000 + b"1" + b"]" * 100_000

    error = refused(deep, "in/deep.json")

    assert "nests 100,000 levels deep; at most 2" in error.reason


def test_json_three_levels_deep_is_refused_naming_the_depth() -> None:
    assert "nests 3 levels deep" in refused(b"[[[1, 2]], [[3, 4]]]", "in/a.json").reason


def test_json_with_strings_hiding_brackets_is_refused_before_parsing() -> None:
    assert "holds strings or objects" in refused(b'[1, "]]]]", 2]', "in/a.json").reason


def test_json_values_and_rows_are_counted_from_the_bytes() -> None:
    declared = arrays.json_shape(json.dumps([[1, 2, 3]] * 5).encode(), "in/a.json")
    assert (declared.rows, declared.columns, declared.values) == (5, 3, 15)
    assert declared.parse_bytes >= 15 * arrays.JSON_BYTES_PER_VALUE


def stats(key: str, job_id: str = "sizes-1") -> dict:
    return {"job": "array_stats", "job_id": job_id, "input_key": key}


def test_npy_bomb_in_the_bucket_is_refused_after_reading_only_its_header(
    access_key_stack: Stack,
) -> None:
    key = f"{INPUT_PREFIX}bomb.npy"
    bomb = npy_claiming((10**6, 10**6), bytes(64))
    access_key_stack.server.client("s3").put_object(
        Bucket=access_key_stack.bucket, Key=key, Body=bomb
    )
    recorder = Recorder(access_key_stack.environ, [])
    before = access_key_stack.snapshot()

    with pytest.raises(PayloadError, match=f"declares {TRILLION:,} values"):
        execute(stats(key), recorder.context())

    assert [call for call, _ in recorder.calls] == ["stat", "list_keys", "read_head"]
    assert access_key_stack.snapshot() == before


def test_huge_npy_and_json_objects_are_refused_from_their_listed_size_before_any_read(
    access_key_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing's size is checked against the limit first (the limits are lowered here so the
    test bucket need not hold gigabytes)."""
    monkeypatch.setattr(arrays, "MAX_NPY_BYTES", 1024)
    monkeypatch.setattr(arrays, "MAX_JSON_BYTES", 1024)
    s3 = access_key_stack.server.client("s3")
    big_npy = npy_bytes(np.zeros(200))  # 1,728 bytes
    big_json = json.dumps([0.5] * 400).encode()  # 2,000 bytes
    s3.put_object(Bucket=access_key_stack.bucket, Key=f"{INPUT_PREFIX}big.npy", Body=big_npy)
    s3.put_object(Bucket=access_key_stack.bucket, Key=f"{INPUT_PREFIX}big.json", Body=big_json)
    recorder = Recorder(access_key_stack.environ, [])

    for name, size in (("big.npy", 1728), ("big.json", 2000)):
        with pytest.raises(PayloadError, match=f"is {size:,} bytes; this job reads at most 1,024"):
            execute(stats(f"{INPUT_PREFIX}{name}", name.replace(".", "-")), recorder.context())

    assert {call for call, _ in recorder.calls} == {"stat", "list_keys"}  # nothing was read
