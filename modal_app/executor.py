"""Runs one payload: pick the job from the registry, parse every field, then do the work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modal_app.context import JobContext
from modal_app.errors import PayloadError
from modal_app.payload import Fields, shown
from modal_app.registry import JOBS


def execute(payload: object, context: JobContext | None = None) -> dict[str, Any]:
    """Run `payload` (`{"job": NAME, ...fields}`) and return the job's result.

    Raises `PayloadError` for a bad payload, before anything is read or written.
    """
    context = context or JobContext()
    if not isinstance(payload, Mapping):
        raise PayloadError(
            "payload",
            f"must be a dict such as {{'job': 'healthcheck'}}, got {type(payload).__name__}",
        )
    if not all(isinstance(name, str) for name in payload):
        raise PayloadError("payload", "field names must be strings")
    listed = ", ".join(sorted(JOBS))
    if "job" not in payload:
        raise PayloadError("job", f"is required; one of: {listed}")
    name = payload["job"]
    if not isinstance(name, str) or name not in JOBS:
        raise PayloadError("job", f"{shown(name)} is not a known job; one of: {listed}")
    job = JOBS[name]
    params = job.parse(Fields(payload, name, job.fields), context)
    return {"job": name, **job.run(params, context)}
