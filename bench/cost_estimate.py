"""How conservative the cost estimate is on this machine: estimated seconds / measured seconds.

    python bench/cost_estimate.py

Runs a few `matmul` and `array_stats` jobs through the executor on the CPU (the only device a
machine without a GPU has) and prints, per job, the estimate `modal_app.cost` made before the run,
the seconds the job measured, and their ratio. A ratio above 1 is the margin that keeps an accepted
payload inside the function's timeout; below 1 would mean the figures are too optimistic for this
machine. On a GPU container, `bench/gpu_matmul.py` reports the achieved TFLOP/s to compare with the
table instead.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

MATMULS = (("float64", 1024, 5), ("float32", 2048, 3), ("bfloat16", 1536, 4))
ARRAYS = ((2_000_000, 4), (200_000, 64))


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    from gpu_matmul import MemoryStore

    from modal_app.accelerator import Accelerator
    from modal_app.context import JobContext
    from modal_app.executor import execute

    cpu = Accelerator("numpy-cpu", "cpu")
    ratios = []
    for dtype, n, iters in MATMULS:
        payload = {"job": "matmul", "n": n, "dtype": dtype, "iters": iters}
        started = time.perf_counter()
        result = execute(payload, JobContext({}, accelerator=cpu))
        measured = time.perf_counter() - started
        estimated = result["estimate"]["seconds"]["CPU"]
        ratios.append(estimated / measured)
        print(
            f"matmul {dtype} n={n} iters={iters}: estimated {estimated:.3f} s, measured "
            f"{measured:.3f} s (whole job), ratio {estimated / measured:.1f}"
        )
    environ = {
        "AWS_REGION": "us-east-1",
        "RENTAGPU_BUCKET": "bench-bucket",
        "RENTAGPU_INPUT_PREFIX": "inputs/",
        "RENTAGPU_OUTPUT_PREFIX": "outputs/",
        "AWS_ROLE_ARN": "arn:aws:iam::000000000000:role/bench",
    }
    for rows, columns in ARRAYS:
        array = np.random.default_rng(0).standard_normal((rows, columns))
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        store = MemoryStore({"inputs/bench.npy": buffer.getvalue()})
        context = JobContext(environ, store_factory=lambda *_, s=store: s, accelerator=cpu)
        payload = {"job": "array_stats", "job_id": f"b{rows}", "input_key": "inputs/bench.npy"}
        started = time.perf_counter()
        result = execute(payload, context)
        measured = time.perf_counter() - started
        # The estimate includes the S3 download, which an in-memory store does not make.
        download = len(buffer.getvalue()) / 25e6
        estimated = result["estimate"]["seconds"]["CPU"] - download
        ratios.append(estimated / measured)
        print(
            f"array_stats {rows}x{columns} float64: estimated {estimated:.3f} s without the "
            f"download ({download:.1f} s more), measured {measured:.3f} s, ratio "
            f"{estimated / measured:.1f}"
        )
    print(f"smallest ratio: {min(ratios):.1f} (above 1: the estimate is conservative here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
