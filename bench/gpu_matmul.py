"""GPU benchmark of the executor's jobs. Run it on a GPU machine (or in a Modal GPU container);
it is not part of CI.

    python bench/gpu_matmul.py [--n 8192] [--iters 50] [--rows 20000000] [--columns 8]

1. `matmul` in bfloat16 at size n: achieved TFLOP/s, and that as a fraction of the GPU's dense
   (no sparsity) bf16 peak from the table below.
2. `array_stats` on a rows x columns float32 array, end to end through the executor (parse,
   load, compute, serialise, conditional put) against an in-memory store, once on the GPU and
   once with NumPy on the CPU for comparison.

On a machine without a CUDA GPU it says so and exits 0. The last line is the results as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's datasheets, matched against the device
# name in order: more specific names first ("L40S" before "L4", "H100 PCIe" before "H100").
DENSE_BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("H100 NVL", 835.5),
    ("H100 PCIe", 756.5),
    ("H100", 989.4),  # SXM; reported as "NVIDIA H100 80GB HBM3"
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
)


def dense_bf16_peak(device_name: str) -> float | None:
    for needle, peak in DENSE_BF16_PEAK_TFLOPS:
        if needle in device_name:
            return peak
    return None


class MemoryStore:
    """The executor's store interface over a dict: times the job, not the network."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def read_input(
        self, key: str, field: str, max_bytes: int, *, etag: str = "", first_bytes: int = 0
    ) -> bytes:
        data = self.objects[key]
        return data[:first_bytes] if first_bytes else data

    def stat(self, key: str) -> Any:
        from modal_app.storage import Listed

        data = self.objects.get(key)
        return (
            None if data is None else Listed(key, len(data), hashlib.sha256(data).hexdigest()[:32])
        )

    def list_keys(self, prefix: str, limit: int) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))[:limit]

    def exists(self, key: str) -> bool:
        return key in self.objects

    def put_once(self, key: str, body: bytes, content_type: str) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = body
        return True


def _time_array_stats(accelerator: Any, data: bytes, job_id: str) -> tuple[float, dict[str, Any]]:
    from modal_app.context import JobContext
    from modal_app.executor import execute

    environ = {
        "AWS_REGION": "us-east-1",
        "RENTAGPU_BUCKET": "bench-bucket",
        "RENTAGPU_INPUT_PREFIX": "inputs/",
        "RENTAGPU_OUTPUT_PREFIX": "outputs/",
        "AWS_ROLE_ARN": "arn:aws:iam::000000000000:role/bench",
    }
    store = MemoryStore({"inputs/bench.npy": data})
    context = JobContext(environ, store_factory=lambda *_: store, accelerator=accelerator)
    payload = {"job": "array_stats", "job_id": job_id, "input_key": "inputs/bench.npy"}
    started = time.perf_counter()
    result = execute(payload, context)
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument(
        "--torch-cpu",
        action="store_true",
        help="run the torch code path on the CPU: checks this script where there is no GPU",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
    import numpy as np

    from modal_app.accelerator import Accelerator, detect
    from modal_app.context import JobContext
    from modal_app.executor import execute

    gpu = detect()
    if args.torch_cpu:
        import torch

        gpu = Accelerator("torch-cpu", "cpu", torch, "cpu")
    elif not gpu.is_gpu:
        print(f"No CUDA GPU here (backend {gpu.backend}); this benchmark needs one. Nothing to do.")
        return 0

    bench = execute(
        {"job": "matmul", "n": args.n, "dtype": "bfloat16", "iters": args.iters},
        JobContext(environ={}, accelerator=gpu),
    )
    peak = dense_bf16_peak(gpu.device_name)
    fraction = bench["tflops"] / peak if peak else None
    print(
        f"device: {gpu.device_name} (torch {gpu.torch.__version__}, CUDA {gpu.torch.version.cuda})"
    )
    print(
        f"matmul bf16 n={args.n} x{args.iters}: {bench['tflops']:.1f} TFLOP/s in "
        f"{bench['seconds']:.3f} s, max relative error {bench['max_relative_error']:.2e}"
    )
    if peak:
        print(f"  = {fraction:.1%} of the dense bf16 peak of {peak:g} TFLOP/s")
    else:
        print("  (no dense bf16 peak known for this device name; add it to the table)")

    array = np.random.default_rng(0).standard_normal((args.rows, args.columns), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    del array
    _time_array_stats(gpu, data, "warm-up")  # CUDA context, kernels, allocator
    gpu_seconds, gpu_result = _time_array_stats(gpu, data, "gpu")
    cpu_seconds, cpu_result = _time_array_stats(Accelerator("numpy-cpu", "cpu"), data, "cpu")
    agree = all(
        abs(g["mean"] - c["mean"]) <= 1e-9 * max(1.0, abs(c["mean"]))
        and abs(g["quantiles"][1] - c["quantiles"][1]) <= 1e-9 * max(1.0, abs(c["quantiles"][1]))
        for g, c in zip(gpu_result["stats"], cpu_result["stats"], strict=True)
    )
    size_mb = len(data) / 1e6
    print(
        f"array_stats {args.rows}x{args.columns} float32 ({size_mb:.0f} MB): {gpu.backend} "
        f"{gpu_seconds:.2f} s (compute {gpu_result['compute_seconds']:.2f} s), numpy-cpu {cpu_seconds:.2f} s "
        f"(compute {cpu_result['compute_seconds']:.2f} s); results agree: {agree}"
    )
    print(
        json.dumps(
            {
                "device": gpu.device_name,
                "matmul": bench,
                "dense_bf16_peak_tflops": peak,
                "fraction_of_peak": fraction,
                "array_stats": {
                    "rows": args.rows,
                    "columns": args.columns,
                    "gpu_seconds": gpu_seconds,
                    "gpu_compute_seconds": gpu_result["compute_seconds"],
                    "cpu_seconds": cpu_seconds,
                    "cpu_compute_seconds": cpu_result["compute_seconds"],
                    "agree": agree,
                },
            }
        )
    )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
