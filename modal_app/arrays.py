"""Numeric arrays from untrusted bytes, their sizes checked before anything is allocated.

A `.npy` header declares a shape and a dtype, and `np.load` allocates what the header declares
before it reads any data. A 192-byte file claiming 10^12 float64 values is therefore an 8 TB
allocation: a `MemoryError`, or a container killed for memory. So the header is parsed on its own
(`npy_header`; the job fetches only the file's first bytes for it) and its claims are checked:
against the limits, and against the object's real size. The data is then viewed in place with
`np.frombuffer`, never through `np.load`.

JSON has no header, but two passes at C speed over the bytes tell its size in values and its
nesting depth before the parser runs (`json_shape`). A deeply nested document would otherwise
exhaust the parser's recursion, and one with strings or objects can never be a numeric array.

Every refusal is a `PayloadError` naming `input_key` and the limit.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np

from modal_app.errors import PayloadError

MAX_NPY_BYTES = 2 * 1024**3
MAX_JSON_BYTES = 64 * 1024**2
MAX_VALUES = 2**28  # 2 GiB as float64; a GPU holds three copies while it sorts (6 GiB)
MAX_COLUMNS = 1024  # the result is one JSON document; keep it readable
MAX_JSON_DEPTH = 2  # a list of numbers, or a list of rows of numbers
# numpy reads .npy headers of at most 10,000 bytes unless told otherwise; the magic string,
# version and length field come first.
MAX_NPY_HEADER = 10_000
NPY_HEAD_BYTES = 16 * 1024
# Python holds a parsed JSON number as an object (24 bytes) plus a list slot (8).
JSON_BYTES_PER_VALUE = 32
_DEPTH_CHUNK = 4 * 1024**2


@dataclass(frozen=True)
class Declared:
    """What an input holds, known before its data is parsed: rows x columns, from how many
    bytes, and the host memory parsing takes beyond the float64 array."""

    rows: int
    columns: int
    source_bytes: int
    parse_bytes: int = 0

    @property
    def values(self) -> int:
        return self.rows * self.columns


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int  # where the data starts
    declared: Declared


def _refused(key: str, text: str) -> PayloadError:
    return PayloadError("input_key", f"{key!r} {text}")


def _checked_shape(key: str, shape: tuple[int, ...], values: int) -> tuple[int, int]:
    if len(shape) not in (1, 2) or values == 0:
        raise _refused(key, f"has shape {shape}; expected a non-empty 1-D or 2-D array")
    if values > MAX_VALUES:
        raise _refused(
            key,
            f"declares {values:,} values (shape {shape}); this job takes at most "
            f"{MAX_VALUES:,} (2 GiB as float64)",
        )
    columns = shape[1] if len(shape) == 2 else 1
    if columns > MAX_COLUMNS:
        raise _refused(key, f"has {columns} columns; at most {MAX_COLUMNS}")
    return values // columns, columns


def npy_header(head: bytes, total_size: int, key: str) -> NpyHeader:
    """The header of a `.npy` file from its first bytes, checked against the limits and against
    `total_size`, the object's real length, before any data is read or allocated."""
    fp = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            read = np.lib.format.read_array_header_1_0
        elif version == (2, 0):
            read = np.lib.format.read_array_header_2_0
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
        shape, fortran_order, dtype = read(fp, max_header_size=MAX_NPY_HEADER)
    except (ValueError, TypeError, SyntaxError, EOFError) as error:
        raise _refused(key, f"is not a .npy file with a readable header: {error}") from None
    if dtype.hasobject:
        raise _refused(
            key, "is not a .npy file of numbers: it holds Python objects (a pickle), never loaded"
        )
    if dtype.kind not in "biuf":
        raise _refused(key, f"holds {dtype.str} values; expected numbers")
    values = math.prod(shape)
    rows, columns = _checked_shape(key, tuple(shape), values)
    offset = fp.tell()
    expected = offset + values * dtype.itemsize
    if expected != total_size:
        raise _refused(
            key,
            f"declares shape {tuple(shape)} of {dtype.str} in its header, {expected:,} bytes, but "
            f"is {total_size:,} bytes long",
        )
    declared = Declared(rows, columns, total_size)
    return NpyHeader(tuple(shape), dtype, fortran_order, offset, declared)


def _max_depth(data: bytes) -> int:
    """The deepest nesting of '[' in `data`, counted in chunks (never one array per byte)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    depth = deepest = 0
    for start in range(0, raw.size, _DEPTH_CHUNK):
        chunk = raw[start : start + _DEPTH_CHUNK]
        step = (chunk == ord("[")).astype(np.int32) - (chunk == ord("]"))
        levels = np.cumsum(step, dtype=np.int64) + depth
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
    return deepest


def json_shape(data: bytes, key: str) -> Declared:
    """A JSON array's size in values and rows, from its bytes, before it is parsed."""
    what = "is not JSON numbers in a rectangular array"
    if b'"' in data or b"{" in data:
        raise _refused(key, f"{what}: it holds strings or objects")
    depth = _max_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise _refused(
            key,
            f"{what}: it nests {depth:,} levels deep; at most {MAX_JSON_DEPTH} (rows of numbers)",
        )
    # With no strings, every ',' separates two values or two rows: values = commas + 1 exactly
    # for a well-formed array (the parser checks the rest).
    values = data.count(b",") + 1
    rows = max(data.count(b"[") - 1, 1) if depth == MAX_JSON_DEPTH else values
    if values > MAX_VALUES:
        raise _refused(key, f"holds {values:,} values; this job takes at most {MAX_VALUES:,}")
    parse_bytes = values * JSON_BYTES_PER_VALUE + rows * 64
    return Declared(rows, max(values // rows, 1), len(data), parse_bytes)


def load_array(data: bytes, key: str) -> np.ndarray:
    """A 2-D float64 array (rows x columns) from `.npy` or `.json` bytes; else a `PayloadError`."""
    if key.endswith(".npy"):
        header = npy_header(data, len(data), key)
        count = header.declared.values
        flat = np.frombuffer(data, dtype=header.dtype, count=count, offset=header.offset)
        array = flat.reshape(header.shape, order="F" if header.fortran_order else "C")
    else:
        json_shape(data, key)
        try:
            array = np.asarray(json.loads(data), dtype=np.float64)
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as error:
            raise _refused(key, f"is not JSON numbers in a rectangular array: {error}") from None
        if array.ndim not in (1, 2) or array.size == 0:
            raise _refused(key, f"has shape {array.shape}; expected a non-empty 1-D or 2-D array")
        _checked_shape(key, array.shape, array.size)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    array = array.astype(np.float64)  # a copy: writable, native byte order, what torch takes
    if not np.isfinite(array).all():
        raise _refused(key, "contains NaN or infinite values")
    return array
