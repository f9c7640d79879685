"""`array_stats`: per-column statistics of a numeric array stored in S3.

Fields: `job_id` (names the result; reusing it returns the existing result), `input_key` (an
object under the input prefix: a `.npy` file, or `.json` holding a list of numbers or a list of
equal-length rows), `quantiles` (optional, each 0-1; default 0.25, 0.5, 0.75).
Result: `{output_prefix}{job_id}.json` with, per column, count, mean, standard deviation
(population), min, max and the quantiles (linear interpolation, as NumPy's default).

Idempotent by job id: a finished job is detected by listing its output key and is not redone; two
tries racing on one id both compute, but the conditional put lets only one write.
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from modal_app import object_keys
from modal_app.accelerator import Accelerator
from modal_app.aws import session_name
from modal_app.context import JobContext
from modal_app.errors import PayloadError
from modal_app.jobs import Job
from modal_app.payload import Fields

MAX_NPY_BYTES = 2 * 1024**3
MAX_JSON_BYTES = 64 * 1024**2  # parsed JSON takes ~10x its size in memory
MAX_COLUMNS = 1024  # the result is one JSON document; keep it readable
MAX_QUANTILES = 16
DEFAULT_QUANTILES = (0.25, 0.5, 0.75)
_ANY_KEY = re.compile(
    r"^.+$", re.DOTALL
)  # the real checks need the prefixes: object_keys.input_key


@dataclass(frozen=True)
class Params:
    job_id: str
    input_key: str
    output_key: str
    quantiles: tuple[float, ...]


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
        output_key=object_keys.output_key(settings, job_id),
        quantiles=quantiles,
    )


def load_array(data: bytes, key: str) -> np.ndarray:
    """A 2-D float64 array (rows x columns) from `.npy` or `.json` bytes; else a `PayloadError`."""
    try:
        if key.endswith(".npy"):
            # allow_pickle=False: a .npy file may carry pickled objects, i.e. code.
            array = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            array = np.asarray(json.loads(data), dtype=np.float64)
    except (ValueError, TypeError, OSError, UnicodeDecodeError) as error:
        kind = "a .npy file" if key.endswith(".npy") else "JSON numbers"
        raise PayloadError(
            "input_key", f"{key!r} is not {kind} in a rectangular array: {error}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise PayloadError("input_key", f"{key!r} holds {array.dtype} values; expected numbers")
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.size == 0:
        raise PayloadError(
            "input_key", f"{key!r} has shape {array.shape}; expected a non-empty 1-D or 2-D array"
        )
    if array.shape[1] > MAX_COLUMNS:
        raise PayloadError(
            "input_key", f"{key!r} has {array.shape[1]} columns; at most {MAX_COLUMNS}"
        )
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise PayloadError("input_key", f"{key!r} contains NaN or infinite values")
    return array


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


def run(params: Params, context: JobContext) -> dict[str, Any]:
    store = context.store(session_name("array_stats", params.job_id))
    done = {"job_id": params.job_id, "output_key": params.output_key}
    if store.exists(params.output_key):
        return {"status": "already_done", **done}

    limit = MAX_NPY_BYTES if params.input_key.endswith(".npy") else MAX_JSON_BYTES
    array = load_array(store.read_input(params.input_key, "input_key", limit), params.input_key)
    accelerator = context.accelerator()
    started = time.perf_counter()
    stats = column_stats(array, params.quantiles, accelerator)
    result = {
        **done,
        "input_key": params.input_key,
        "rows": int(array.shape[0]),
        "columns": int(array.shape[1]),
        "quantiles": list(params.quantiles),
        "backend": accelerator.backend,
        "device": accelerator.device_name,
        "compute_seconds": time.perf_counter() - started,
        "stats": stats,
    }
    body = json.dumps(result, sort_keys=True).encode()
    written = store.put_once(params.output_key, body, "application/json")
    return {"status": "written" if written else "already_done", **result}


JOB = Job(
    name="array_stats",
    summary="per-column statistics of a numeric array (.npy or .json) under the input prefix",
    fields=("job_id", "input_key", "quantiles"),
    parse=parse,
    run=run,
)
