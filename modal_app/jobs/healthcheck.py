"""`healthcheck`: what this container sees (GPU, driver, frameworks, runtime secret).

The smoke test a deploy runs. It reads no data and makes no network call, and it succeeds even
where there is no GPU or no torch: it reports what is missing in `problems` and sets `ready` to
False, so the caller decides (a deploy rolls back; a laptop run just shows it).
"""

from __future__ import annotations

import platform
from typing import Any

from modal_app import contract
from modal_app.accelerator import nvidia_smi, package_version
from modal_app.context import JobContext
from modal_app.errors import SettingsError
from modal_app.jobs import Job
from modal_app.payload import Fields

# Set by Modal in every container; absent locally.
_MODAL_VARIABLES = ("MODAL_ENVIRONMENT", "MODAL_TASK_ID", "MODAL_REGION", "MODAL_CLOUD_PROVIDER")


def parse(fields: Fields, context: JobContext) -> None:
    return None


def run(params: None, context: JobContext) -> dict[str, Any]:
    accelerator = context.accelerator()
    problems: list[str] = []
    torch_version = package_version("torch")
    if torch_version is None:
        problems.append("torch is not installed: jobs run on the CPU with NumPy")
    if not accelerator.is_gpu:
        problems.append("no CUDA GPU is visible: jobs run on the CPU")

    auth_mode = None
    try:
        auth_mode = context.settings().auth_mode
    except SettingsError as error:
        problems.extend(f"runtime secret: {problem}" for problem in error.problems)
    if auth_mode == contract.OIDC and not context.environ.get(contract.IDENTITY_TOKEN):
        problems.append(
            f"{contract.IDENTITY_TOKEN} is not set: the runtime role cannot be assumed (Modal injects "
            "it only into deployed apps with a qualifying name)"
        )

    cuda = None
    if accelerator.torch is not None:
        cuda = accelerator.torch.version.cuda
    return {
        "ready": not problems,
        "problems": problems,
        "backend": accelerator.backend,
        "device": accelerator.device_name,
        "gpus": nvidia_smi(),
        "cuda": cuda,
        "python": platform.python_version(),
        "frameworks": {name: package_version(name) for name in ("torch", "numpy", "boto3")},
        "auth_mode": auth_mode,
        "modal": {name: context.environ.get(name) for name in _MODAL_VARIABLES},
    }


JOB = Job(
    name="healthcheck",
    summary="report the GPU, driver, frameworks and runtime secret this container sees",
    fields=(),
    parse=parse,
    run=run,
)
