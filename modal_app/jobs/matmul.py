"""`matmul`: a square matrix-multiply benchmark reporting achieved TFLOP/s.

Fields: `n` (size, 8-32768; at most 4096 on a CPU), `dtype` (float32, float16, bfloat16, float64),
`iters` (timed repetitions, 1-1000). Sizes and repetitions that would not finish within the
function's timeout on the slowest GPU it is deployed with (or on the CPU) are refused before any
work, naming the field and how far it may go (`modal_app.cost`). Runs on the GPU through torch when there is one, else through
NumPy on the CPU, where float16/bfloat16 are computed in float32 (NumPy has no fast kernel for
them; the result says so in `computed_dtype`). A product costs 2*n^3 floating-point operations.
The result also reports the error of a few output entries against a float64 reference, so a
fast-but-wrong configuration cannot pass as a good benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from modal_app import cost
from modal_app.accelerator import Accelerator
from modal_app.context import JobContext
from modal_app.errors import PayloadError
from modal_app.jobs import Job
from modal_app.payload import Fields

DTYPES = ("bfloat16", "float16", "float32", "float64")
MAX_N = 32768  # three bf16 matrices of this size are 6 GiB: fits every GPU Modal offers
MAX_N_CPU = 4096  # beyond this one CPU product takes minutes
WARMUP = 3
_CHECK = 4  # output entries per side compared with the float64 reference


MAX_ITERS = 1000
# NumPy draws the two random matrices at about 35 ns a value on a busy build machine core.
_CPU_SECONDS_PER_RANDOM_VALUE = 60e-9
_ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8}


@dataclass(frozen=True)
class Params:
    n: int
    dtype: str
    iters: int
    devices: tuple[str, ...] = (cost.CPU,)


def computed_dtype(dtype: str, on_gpu: bool) -> str:
    """NumPy has no fast float16/bfloat16 kernel: without a GPU they are computed in float32."""
    return dtype if on_gpu or dtype in ("float32", "float64") else "float32"


def estimate(n: int, dtype: str, iters: int, on_gpu: bool) -> cost.Estimate:
    """Every product (the timed ones and the warm-ups) costs 2*n^3 operations; three n x n
    matrices live on the device."""
    computed = computed_dtype(dtype, on_gpu)
    products = iters + (WARMUP if on_gpu else 1)
    return cost.Estimate(
        dtype=computed,
        flops=2.0 * n**3 * products,
        memory_bytes=3.0 * n * n * _ITEMSIZE[computed],
        fixed_s=0.0 if on_gpu else 2.0 * n * n * _CPU_SECONDS_PER_RANDOM_VALUE,
    )


def refusal(n: int, dtype: str, iters: int, devices: tuple[str, ...]) -> PayloadError | None:
    """Why this size cannot run on `devices`, naming the field to change and its limit; else None."""
    on_gpu = devices != (cost.CPU,)

    def fits(n: int, iters: int) -> bool:
        return cost.verdict(estimate(n, dtype, iters, on_gpu), devices).problem is None

    found = cost.verdict(estimate(n, dtype, iters, on_gpu), devices)
    if found.problem is None:
        return None
    products = f"{iters} product{'s' if iters > 1 else ''}"
    what = f"{products} of {n}x{n} {dtype} matrices (plus the warm-up): the job {found.problem}"
    most_iters = cost.largest(lambda i: fits(n, i), 1, iters)
    if most_iters is not None:  # fewer repetitions fit: the size is fine, the count is not
        return PayloadError(
            "iters", f"{what}; at n={n} with {dtype}, iters may be at most {most_iters}"
        )
    most_n = cost.largest(lambda m: fits(m, 1), 8, n)
    hint = f"; with {dtype}, n may be at most {most_n} (at iters=1)" if most_n else ""
    return PayloadError("n", f"{n} is too large: {what}{hint}")


def parse(fields: Fields, context: JobContext) -> Params:
    n = fields.integer("n", low=8, high=MAX_N, default=2048)
    dtype = fields.choice("dtype", DTYPES, default="bfloat16")
    iters = fields.integer("iters", low=1, high=MAX_ITERS, default=10)
    if n > MAX_N_CPU and not context.accelerator().is_gpu:
        raise PayloadError(
            "n", f"{n} is out of range on a CPU; expected 8-{MAX_N_CPU} without a GPU"
        )
    devices = context.cost_devices()
    refused = refusal(n, dtype, iters, devices)
    if refused is not None:
        raise refused
    return Params(n, dtype, iters, devices)


def _max_relative_error(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    reference = a[:_CHECK].astype(np.float64) @ b[:, :_CHECK].astype(np.float64)
    got = c[:_CHECK, :_CHECK].astype(np.float64)
    scale = np.maximum(
        np.abs(reference), 1.0
    )  # entries near 0 would make a relative error meaningless
    return float(np.max(np.abs(got - reference) / scale))


def _run_numpy(params: Params) -> tuple[float, str, float]:
    computed = params.dtype if params.dtype in ("float32", "float64") else "float32"
    rng = np.random.default_rng(0)
    a = rng.standard_normal((params.n, params.n), dtype=np.dtype(computed))
    b = rng.standard_normal((params.n, params.n), dtype=np.dtype(computed))
    c = np.empty_like(a)
    np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults on `c`
    start = time.perf_counter()
    for _ in range(params.iters):
        np.matmul(a, b, out=c)
    seconds = time.perf_counter() - start
    return seconds, computed, _max_relative_error(a, b, c)


def _run_torch(params: Params, accelerator: Accelerator) -> tuple[float, str, float]:
    torch = accelerator.torch
    assert torch is not None
    device = accelerator.device
    dtype = getattr(torch, params.dtype)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(params.n, params.n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(params.n, params.n, device=device, dtype=dtype, generator=generator)
    c = torch.empty_like(a)
    for _ in range(WARMUP):  # cuBLAS picks its kernel and the clocks ramp up
        torch.matmul(a, b, out=c)
    if accelerator.is_gpu:
        torch.cuda.synchronize()
        # CUDA events time the GPU work itself, not Python's launch overhead around it.
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(params.iters):
            torch.matmul(a, b, out=c)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000.0
    else:
        started = time.perf_counter()
        for _ in range(params.iters):
            torch.matmul(a, b, out=c)
        seconds = time.perf_counter() - started

    # Only the checked corner comes back to the host, widened to float64 (NumPy has no bfloat16).
    def host(t):
        return t.to(torch.float64).cpu().numpy()

    error = _max_relative_error(host(a[:_CHECK]), host(b[:, :_CHECK]), host(c[:_CHECK, :_CHECK]))
    return seconds, params.dtype, error


def run(params: Params, context: JobContext) -> dict[str, Any]:
    accelerator = context.accelerator()
    if accelerator.torch is not None:
        seconds, computed, error = _run_torch(params, accelerator)
    else:
        seconds, computed, error = _run_numpy(params)
    flops = 2.0 * params.n**3 * params.iters
    on_gpu = params.devices != (cost.CPU,)
    planned = estimate(params.n, params.dtype, params.iters, on_gpu)
    return {
        "n": params.n,
        "dtype": params.dtype,
        "computed_dtype": computed,
        "iters": params.iters,
        "backend": accelerator.backend,
        "device": accelerator.device_name,
        "seconds": seconds,
        "tflops": flops / seconds / 1e12 if seconds > 0 else float("inf"),
        "max_relative_error": error,
        "estimate": planned.as_dict(params.devices),
    }


JOB = Job(
    name="matmul",
    summary="square matrix-multiply benchmark; reports achieved TFLOP/s",
    fields=("n", "dtype", "iters"),
    parse=parse,
    run=run,
)
