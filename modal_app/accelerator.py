"""What this container computes on: PyTorch on a CUDA GPU when there is one, else NumPy on the CPU.

Detected, never assumed: the same jobs run in a GPU container, on a laptop without torch, and in CI,
and every result says which of the two it ran on, so a job that silently fell back to the CPU in
a GPU container shows up in its own result.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import shutil
import subprocess
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Accelerator:
    """Where jobs compute. `torch` set means the torch code path runs on `device`."""

    backend: str  # "torch-cuda" or "numpy-cpu" ("torch-cpu" only when built by hand, for tests)
    device_name: str
    torch: ModuleType | None = None
    device: str = "cpu"

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")


def _torch() -> ModuleType | None:
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def detect() -> Accelerator:
    torch = _torch()
    if torch is not None and torch.cuda.is_available():
        return Accelerator("torch-cuda", torch.cuda.get_device_name(0), torch, "cuda")
    return Accelerator("numpy-cpu", platform.processor() or platform.machine() or "cpu")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def nvidia_smi() -> list[dict[str, str]]:
    """GPUs as the driver reports them (name, driver, memory); empty where there is no driver."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        out = subprocess.run(
            [
                tool,
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory_mib": parts[2]})
    return gpus
