"""The jobs the executor can run. Each module defines one `Job`; `modal_app.registry` lists them.

A job is two functions: `parse` turns the payload into typed parameters, refusing anything wrong
with a `PayloadError` before any I/O; `run` does the work. Keeping them apart is what guarantees
"a bad payload reads and writes nothing".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modal_app.context import JobContext
from modal_app.payload import Fields


@dataclass(frozen=True)
class Job:
    name: str
    summary: str
    fields: tuple[str, ...]
    parse: Callable[[Fields, JobContext], Any]
    run: Callable[[Any, JobContext], dict[str, Any]]
