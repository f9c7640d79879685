"""`array_stats`: per-column statistics of a numeric array stored in S3.

Fields: `job_id` (names the result), `input_key` (an object under the input prefix: a `.npy` file,
or `.json` holding a list of numbers or a list of equal-length rows), `quantiles` (optional, each
0-1; default 0.25, 0.5, 0.75).
Result: `{output_prefix}{job_id}/{input digest}.json` with, per column, count, mean, standard
deviation (population), min, max and the quantiles (linear interpolation, as NumPy's default), and
the hash of the bytes it was computed from.

Before any byte of the input is read, a listing gives its size and ETag, and the job works out
its *input digest*: a hash of the key, the ETag (its content) and the quantiles. The digest is
part of the result's key. So a finished job is detected by listing and is not redone; a `job_id`
reused with a different input finds a result with another digest and is refused, naming both;
and two tries racing on one id and one input both compute, but the conditional put lets only one
write. Sizes come from the listing and from the `.npy` header (its first bytes only) or a count
over the JSON bytes, and the job's cost is estimated from them, before the data is loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from modal_app import arrays, cost, object_keys
from modal_app.accelerator import Accelerator
from modal_app.arrays import MAX_COLUMNS, MAX_JSON_BYTES, MAX_NPY_BYTES, load_array
from modal_app.aws import session_name
from modal_app.context import JobContext
from modal_app.errors import PayloadError
from modal_app.jobs import Job
from modal_app.payload import Fields
from modal_app.storage import JobStore, Listed

__all__ = ["JOB", "MAX_COLUMNS", "MAX_JSON_BYTES", "MAX_NPY_BYTES", "column_stats", "load_array"]

MAX_QUANTILES = 16
DEFAULT_QUANTILES = (0.25, 0.5, 0.75)
# A sort moves every value and its index through memory a few dozen times; each quantile, min,
# max, mean and std one or two passes more. Counted in bytes of float64 values.
_PASSES = 32
_ANY_KEY = re.compile(
    r"^.+$", re.DOTALL
)  # the real checks need the prefixes: object_keys.input_key


@dataclass(frozen=True)
class Params:
    job_id: str
    input_key: str
    quantiles: tuple[float, ...]
    devices: tuple[str, ...] = (cost.CPU,)


def parse(fields: Fields, context: JobContext) -> Params:
    job_id = fields.string(
        "job_id", pattern=object_keys.JOB_ID, allowed=object_keys.JOB_ID_ALLOWED, max_length=128
    )
    raw_key = fields.string(
        "input_key",
        pattern=_ANY_KEY,
        allowed=f"an S3 key ending in {' or '.join(object_keys.INPUT_SUFFIXES)}",
        max_length=object_keys.MAX_KEY_BYTES,
    )
    quantiles = fields.numbers(
        "quantiles", low=0.0, high=1.0, max_items=MAX_QUANTILES, default=DEFAULT_QUANTILES
    )
    settings = context.settings()  # the prefixes live in the runtime secret
    return Params(
        job_id=job_id,
        input_key=object_keys.input_key(settings, "input_key", raw_key),
        quantiles=quantiles,
        devices=context.cost_devices(),
    )


def input_digest(params: Params, listed: Listed) -> str:
    """What a result is computed from, in 32 hex digits: key, content (ETag, size), quantiles."""
    described = {
        "job": "array_stats",
        "input_key": listed.key,
        "etag": listed.etag,
        "size": listed.size,
        "quantiles": list(params.quantiles),
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def estimate(declared: arrays.Declared, quantiles: int) -> cost.Estimate:
    values = declared.values
    return cost.Estimate(
        dtype="float64",
        bytes_moved=values * 8.0 * (_PASSES + 2 * quantiles),
        bytes_read=declared.source_bytes,
        memory_bytes=values * 8.0 * 3,  # the values, their sorted copy, the sort's int64 indices
        host_bytes=declared.source_bytes + declared.parse_bytes + values * 9.0,
    )


def _stats_numpy(x: np.ndarray, quantiles: tuple[float, ...]) -> dict[str, np.ndarray]:
    return {
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "quantiles": np.quantile(x, quantiles, axis=0),
    }


def _stats_torch(
    x: np.ndarray, quantiles: tuple[float, ...], accelerator: Accelerator
) -> dict[str, np.ndarray]:
    torch = accelerator.torch
    assert torch is not None
    t = torch.from_numpy(np.ascontiguousarray(x)).to(accelerator.device)
    # torch.quantile refuses inputs over 2**24 elements, so quantiles come from one sort, with the
    # same linear interpolation NumPy uses: q*(n-1) between its two neighbours.
    ordered = torch.sort(t, dim=0).values
    position = torch.tensor(quantiles, dtype=t.dtype, device=t.device) * (t.shape[0] - 1)
    low = position.floor().long()
    high = position.ceil().long()
    weight = (position - low.to(t.dtype)).unsqueeze(1)
    values = ordered[low] + (ordered[high] - ordered[low]) * weight
    result = {
        "mean": t.mean(dim=0),
        "std": t.std(dim=0, correction=0),
        "min": ordered[0],
        "max": ordered[-1],
        "quantiles": values,
    }
    return {name: value.cpu().numpy() for name, value in result.items()}


def column_stats(
    x: np.ndarray, quantiles: tuple[float, ...], accelerator: Accelerator
) -> list[dict[str, Any]]:
    if accelerator.torch is not None:
        stats = _stats_torch(x, quantiles, accelerator)
    else:
        stats = _stats_numpy(x, quantiles)
    return [
        {
            "column": column,
            "count": int(x.shape[0]),
            "mean": float(stats["mean"][column]),
            "std": float(stats["std"][column]),
            "min": float(stats["min"][column]),
            "max": float(stats["max"][column]),
            "quantiles": [float(v) for v in stats["quantiles"][:, column]],
        }
        for column in range(x.shape[1])
    ]


def _reused(params: Params, digest: str, earlier: list[str]) -> PayloadError:
    theirs = ", ".join(
        f"{key!r} (input digest {object_keys.digest_of(key) or 'unknown'})" for key in earlier
    )
    return PayloadError(
        "job_id",
        f"{params.job_id!r} already names a result of another input: {theirs}; this call asks for "
        f"{params.input_key!r} with quantiles {list(params.quantiles)} (input digest {digest}, "
        "over the key, its content and the quantiles). Use a new job_id, or the earlier "
        "result's own input (its `input_key` says which)",
    )


def _byte_limit(key: str) -> int:
    return arrays.MAX_NPY_BYTES if key.endswith(".npy") else arrays.MAX_JSON_BYTES


def _declared(store: JobStore, params: Params, listed: Listed) -> arrays.Declared | None:
    """The input's declared size before its data is read: from a `.npy` header (only the first
    bytes are fetched), else None (JSON is sized once its bytes are in)."""
    key = params.input_key
    limit = _byte_limit(key)
    if listed.size > limit:
        raise PayloadError(
            "input_key",
            f"object {key!r} is {listed.size:,} bytes; this job reads at most {limit:,}",
        )
    if not key.endswith(".npy"):
        return None
    head = store.read_input(
        key, "input_key", limit, etag=listed.etag, first_bytes=arrays.NPY_HEAD_BYTES
    )
    return arrays.npy_header(head, listed.size, key).declared


def _check_cost(params: Params, declared: arrays.Declared) -> cost.Estimate:
    planned = estimate(declared, len(params.quantiles))
    what = f"{params.input_key!r}, {declared.rows:,} rows x {declared.columns:,} columns:"
    cost.check(planned, params.devices, "input_key", f"{what} the job")
    return planned


def run(params: Params, context: JobContext) -> dict[str, Any]:
    settings = context.settings()
    store = context.store(session_name("array_stats", params.job_id))
    listed = store.stat(params.input_key)
    if listed is None:
        raise PayloadError(
            "input_key", f"no object {params.input_key!r} in bucket {settings.bucket!r}"
        )
    digest = input_digest(params, listed)
    output_key = object_keys.output_key(settings, params.job_id, digest)
    done = {"job_id": params.job_id, "output_key": output_key, "input_digest": digest}
    earlier = store.list_keys(object_keys.job_prefix(settings, params.job_id), 10)
    if output_key in earlier:
        return {"status": "already_done", **done}
    if earlier:
        raise _reused(params, digest, earlier)

    declared = _declared(store, params, listed)
    planned = _check_cost(params, declared) if declared is not None else None
    data = store.read_input(
        params.input_key, "input_key", _byte_limit(params.input_key), etag=listed.etag
    )
    if planned is None:
        planned = _check_cost(params, arrays.json_shape(data, params.input_key))
    array = load_array(data, params.input_key)
    accelerator = context.accelerator()
    started = time.perf_counter()
    stats = column_stats(array, params.quantiles, accelerator)
    result = {
        **done,
        "input_key": params.input_key,
        "input_etag": listed.etag,
        "input_sha256": hashlib.sha256(data).hexdigest(),
        "rows": int(array.shape[0]),
        "columns": int(array.shape[1]),
        "quantiles": list(params.quantiles),
        "backend": accelerator.backend,
        "device": accelerator.device_name,
        "compute_seconds": time.perf_counter() - started,
        "estimate": planned.as_dict(params.devices),
        "stats": stats,
    }
    body = json.dumps(result, sort_keys=True).encode()
    written = store.put_once(output_key, body, "application/json")
    return {"status": "written" if written else "already_done", **result}


JOB = Job(
    name="array_stats",
    summary="per-column statistics of a numeric array (.npy or .json) under the input prefix",
    fields=("job_id", "input_key", "quantiles"),
    parse=parse,
    run=run,
)
