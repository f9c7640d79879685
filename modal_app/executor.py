"""Runs one payload: pick the job from the registry, parse every field, then do the work.

`execute` raises `PayloadError` for a bad payload; `handle`, what the Modal function runs, returns
it as a result instead. Modal 1.6.4 cannot be told not to retry an exception (`modal.Retries` holds
only a count and delays, and every failed input uses one up), so a raised `PayloadError` would cost
a GPU container start per retry for a request that can never succeed. Returned, it is one short
call that succeeds; errors that a retry may cure (a lost container, an S3 hiccup) still raise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from modal_app.context import JobContext
from modal_app.contract import REFUSED
from modal_app.errors import PayloadError
from modal_app.payload import Fields, shown
from modal_app.registry import JOBS

log = logging.getLogger(__name__)


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


def refused(payload: object, error: PayloadError) -> dict[str, Any]:
    """The result of a refused payload: which field, why, and the message `PayloadError` has."""
    job = payload.get("job") if isinstance(payload, Mapping) else None
    return {
        "job": job if isinstance(job, str) and job in JOBS else None,
        "status": REFUSED,
        "error": type(error).__name__,
        "field": error.field,
        "reason": error.reason,
        "message": str(error),
    }


def handle(payload: object, context: JobContext | None = None) -> dict[str, Any]:
    """What `run_gpu_job` returns: the job's result, or `refused(...)` for a bad payload."""
    try:
        return execute(payload, context)
    except PayloadError as error:
        # One line in the function's logs, naming the field; the caller gets the same in the result.
        log.warning("payload refused: %s", error)
        return refused(payload, error)
