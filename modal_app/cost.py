"""What a job may cost, and what each device can do: the figures the cost estimate is made from.

Every job estimates its cost from the payload before it does any work (`Estimate`: operations,
bytes read, memory) and `check` refuses, with a `PayloadError` naming the field and the limit, a
payload that could not finish within the function's timeout on the *slowest* device it may land
on: each GPU type the app is deployed with (Modal takes the first one it has capacity for, so a
payload must fit every one of them), or the CPU when there is no GPU (a local run, CI).

The figures are conservative on purpose. A refused payload costs its caller a smaller request; an
accepted payload that runs out of time costs a GPU for the whole timeout. So the table holds
vendor datasheet figures for dense (not sparse) work, choosing the lower variant where Modal's
could be either, and `SUSTAINED_SHARE` assumes a job reaches only half of them. Standard library
only: `modal_app.app` imports this module when it is deployed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from modal_app.contract import GPU_TYPES
from modal_app.errors import PayloadError

# The function's timeout (modal_app.app passes it to Modal) and the share of it a job's own work
# may use: the rest covers the container start, imports, credentials and the result's write.
FUNCTION_TIMEOUT_S = 30 * 60
COMPUTE_SHARE = 0.8
BUDGET_S = FUNCTION_TIMEOUT_S * COMPUTE_SHARE

# A square matmul reaches 60-80% of the dense peak at large sizes (bench/gpu_matmul.py aims at
# 70%), far less at small ones and on a throttled or shared device: assume half.
SUSTAINED_SHARE = 0.5
# Of a device's memory, what a job may plan to use: the CUDA context, the allocator's caching and
# fragmentation take the rest.
MEMORY_SHARE = 0.9
# The host memory a job may plan to use, GPU or not. Modal's GPU machines have far more, but the
# function reserves no memory, so the estimate assumes a modest laptop's worth.
HOST_MEMORY_BYTES = 8 * 1024**3
# Reading an input from S3 into the container: a conservative single-stream GetObject rate.
S3_BYTES_PER_S = 25e6

DTYPES = ("bfloat16", "float16", "float32", "float64")
CPU = "CPU"
T = 1e12
G = 1e9


@dataclass(frozen=True)
class Device:
    """A device's datasheet figures: dense FLOP/s per dtype, memory and its bandwidth."""

    name: str
    flops: Mapping[str, float]
    memory_bytes: float
    bandwidth: float  # bytes/s between the device's memory and its cores

    def seconds(self, estimate: Estimate) -> float:
        """The estimate's run time here, at the sustained share of the peak figures."""
        compute = estimate.flops / (self.flops[estimate.dtype] * SUSTAINED_SHARE)
        memory = estimate.bytes_moved / (self.bandwidth * SUSTAINED_SHARE)
        return compute + memory + estimate.bytes_read / S3_BYTES_PER_S + estimate.fixed_s


def _gpu(name: str, f64: float, f32: float, f16: float, bf16: float, gb: float, gbs: float):
    flops = {"float64": f64 * T, "float32": f32 * T, "float16": f16 * T, "bfloat16": bf16 * T}
    return Device(name, flops, gb * 1e9, gbs * 1e9)


# torch multiplies float32 without TF32 by default (float32_matmul_precision "highest"), so float32
# is the plain FP32 figure; float64 on A100, H100, H200 and B200 is the FP64 Tensor Core figure
# cuBLAS uses; the other GPUs run FP64 at 1/32 (Turing) or 1/64 (Ampere GA10x, Ada) of FP32.
DEVICES: Mapping[str, Device] = {
    d.name: d
    for d in (
        # NVIDIA T4 datasheet: FP32 8.1, mixed-precision FP16 65 TFLOP/s, 16 GB at 320 GB/s.
        # Turing has no bfloat16 unit: counted at the FP32 rate.
        _gpu("T4", 0.25, 8.1, 65, 8.1, 16, 320),
        # NVIDIA L4 datasheet: FP32 30.3, FP16/BF16 242 with sparsity (121 dense), 24 GB, 300 GB/s.
        _gpu("L4", 0.47, 30.3, 121, 121, 24, 300),
        # NVIDIA A10 datasheet: FP32 31.2, BF16 125 dense, 24 GB at 600 GB/s; AWS's A10G variant
        # is reported at about 70 TFLOP/s FP16, and the lower figure is used.
        _gpu("A10G", 0.49, 31.2, 70, 70, 24, 600),
        # NVIDIA L40S datasheet: FP32 91.6, BF16 733 with sparsity (366 dense), 48 GB, 864 GB/s.
        _gpu("L40S", 1.4, 91.6, 362, 362, 48, 864),
        # NVIDIA A100 datasheet (40GB): FP64 Tensor 19.5, FP32 19.5, BF16 312, 1,555 GB/s.
        _gpu("A100", 19.5, 19.5, 312, 312, 40, 1555),
        _gpu("A100-40GB", 19.5, 19.5, 312, 312, 40, 1555),
        # NVIDIA A100 datasheet (80GB): the same cores; 1,935 GB/s (PCIe; SXM 2,039).
        _gpu("A100-80GB", 19.5, 19.5, 312, 312, 80, 1935),
        # NVIDIA H100 datasheet, PCIe column (lower than SXM's 67/67/989 and 3.35 TB/s): FP64
        # Tensor 51, FP32 51, BF16 1,513 with sparsity (756 dense), 80 GB at 2,000 GB/s.
        _gpu("H100", 51, 51, 756, 756, 80, 2000),
        # NVIDIA H200 datasheet, NVL column (lower than SXM's): FP64 Tensor 60, FP32 60, BF16
        # 1,671 with sparsity (835 dense), 141 GB at 4.8 TB/s.
        _gpu("H200", 60, 60, 835, 835, 141, 4800),
        # NVIDIA HGX B200 (per GPU): FP64 Tensor 35 (of 37-40 quoted), FP32 75, BF16 2,250 dense;
        # nvidia-smi shows 179 GB, at 7.7 TB/s.
        _gpu("B200", 35, 75, 2250, 2250, 179, 7700),
        # The CPU has no datasheet here. Two shared cores of this project's build machine reached
        # 99 (float64) and 165 (float32) GFLOP/s with NumPy 2.4 when idle, and 32 and 55 when
        # other work shared them; the busy figures rounded down are listed (20 and 40), so a
        # loaded laptop still meets them (bench/cost_estimate.py prints estimate / measured).
        # NumPy has no fast float16/bfloat16 kernel: the job computes them in float32. "Memory"
        # is the host budget; 4 GB/s is what NumPy's reductions and sorts reached there, busy.
        Device(
            CPU,
            {"float64": 20 * G, "float32": 40 * G, "float16": 40 * G, "bfloat16": 40 * G},
            HOST_MEMORY_BYTES,
            4 * G,
        ),
    )
}
assert set(DEVICES) == {*GPU_TYPES, CPU}, "every Modal GPU type needs figures here"


@dataclass(frozen=True)
class Estimate:
    """What one job will do. `memory_bytes` is on the device, `host_bytes` in the container."""

    dtype: str = "float64"
    flops: float = 0.0  # floating-point operations on the device
    bytes_moved: float = 0.0  # memory-bound work: bytes streamed through the device's memory
    bytes_read: float = 0.0  # from S3
    memory_bytes: float = 0.0
    host_bytes: float = 0.0
    fixed_s: float = 0.0  # per-call overheads that do not scale with the device

    def as_dict(self, devices: Iterable[str]) -> dict[str, object]:
        """What a job's result reports: the estimate, and its time on each device it checked."""
        return {
            "flops": self.flops,
            "bytes_read": self.bytes_read,
            "memory_bytes": self.memory_bytes,
            "host_bytes": self.host_bytes,
            "seconds": {name: round(device(name).seconds(self), 3) for name in devices},
            "budget_seconds": BUDGET_S,
        }


def gpu_type(choice: str) -> str:
    """'H100:2' -> 'H100': a job runs on one GPU however many the container has."""
    return choice.split(":", 1)[0]


def device(name: str) -> Device:
    return DEVICES[gpu_type(name)]


def devices_for(gpus: Iterable[str], on_gpu: bool) -> tuple[str, ...]:
    """The devices a payload must fit: the configured GPU types on a GPU, else the CPU."""
    if not on_gpu:
        return (CPU,)
    return tuple(dict.fromkeys(gpu_type(g) for g in gpus)) or (CPU,)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def size(n_bytes: float) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes:.0f} bytes"


@dataclass(frozen=True)
class Verdict:
    """Why an estimate does not fit (`problem`), on which device, or None problem if it fits."""

    device: str
    seconds: float
    problem: str | None


def verdict(estimate: Estimate, devices: Iterable[str]) -> Verdict:
    """The slowest (or smallest) device's verdict: a payload must fit every one it may land on."""
    names = tuple(devices)
    budget = f"the {duration(BUDGET_S)} a job may use ({COMPUTE_SHARE:.0%} of the function's "
    budget += f"{FUNCTION_TIMEOUT_S // 60}-minute timeout)"
    if estimate.host_bytes > HOST_MEMORY_BYTES:
        slowest = max(names, key=lambda n: device(n).seconds(estimate))
        return Verdict(
            slowest,
            device(slowest).seconds(estimate),
            f"needs about {size(estimate.host_bytes)} of host memory; a job may plan on "
            f"{size(HOST_MEMORY_BYTES)}",
        )
    for name in names:
        usable = device(name).memory_bytes * MEMORY_SHARE
        if estimate.memory_bytes > usable:
            return Verdict(
                name,
                device(name).seconds(estimate),
                f"needs about {size(estimate.memory_bytes)} of memory on {name}, which has "
                f"{size(usable)} for a job",
            )
    slowest = max(names, key=lambda n: device(n).seconds(estimate))
    seconds = device(slowest).seconds(estimate)
    if seconds > BUDGET_S:
        where = f"{slowest}, the slowest device configured" if len(names) > 1 else slowest
        return Verdict(
            slowest, seconds, f"would take about {duration(seconds)} on {where}, over {budget}"
        )
    return Verdict(slowest, seconds, None)


def check(
    estimate: Estimate, devices: Iterable[str], field: str, what: str, hint: str = ""
) -> None:
    """Refuse, naming `field`, a payload whose estimate does not fit; `what` describes the work."""
    found = verdict(estimate, devices)
    if found.problem is not None:
        raise PayloadError(field, f"{what} {found.problem}{hint}")


def largest(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """The largest value in [low, high] for which `fits` holds, given it is monotone; or None."""
    if not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def log2(value: float) -> float:
    return math.log2(max(value, 2.0))
