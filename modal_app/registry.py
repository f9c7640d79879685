"""The only jobs `run_gpu_job` will run. A payload names one of these; nothing else is executable.

There is deliberately no job that takes code, a module path or a shell command: the executor is a
fixed menu, so whoever can call the function can spend GPU time but cannot run code of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modal_app.jobs import Job, array_stats, healthcheck, matmul

JOBS: Mapping[str, Job] = MappingProxyType(
    {job.name: job for job in (healthcheck.JOB, matmul.JOB, array_stats.JOB)}
)
