"""How the hook's errors and log lines reach a user through Pulumi's dynamic provider host.

Under the real engine, providers run in `python -m pulumi.dynamic` (pulumi/dynamic/__main__.py,
pulumi 3.272.0), which differs from the tests' in-process calls in two ways:

- A method that raises is answered with `traceback.format_exc()` as the gRPC error details, and the
  engine prints those details, whole, as the resource's error. A traceback's first line is
  "Traceback (most recent call last):" and the message the user needs is its last. `raise error
  from Headline(error)` puts a never-raised exception first in the chain; a traceback prints a
  chained cause before the error itself, and a cause that was never raised has no frames, so the
  first line becomes `rentagpu: <the message>`.
- The host has no engine connection: `pulumi.log` falls back to printing on stderr, and Python
  `logging` has no handler (INFO is dropped, WARNING goes to stderr unprefixed). The engine forwards
  a dynamic provider's stderr lines (plugin.go, `isDynamicPluginBinary`), so `ensure_host_logging`
  gives the hook's loggers a handler that prints `warning: ...` / `info: ...` there.

Only `RentagpuError`s get a headline: anything else is a bug, and its traceback is the useful part.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from infra.core.errors import RentagpuError

F = TypeVar("F", bound=Callable[..., Any])

HOST_MODULE = "pulumi.dynamic.__main__"
LOGGER = "infra.modal_hook"


class Headline(Exception):  # noqa: N818 - named for how the traceback shows it
    """The one-line summary a user reads first. Shown by tracebacks as `rentagpu: MESSAGE`."""


# A traceback names an exception's class by module and qualified name, except for builtins.
Headline.__module__ = "builtins"
Headline.__qualname__ = "rentagpu"


def with_headline(method: F) -> F:
    """Wrap a provider method so a `RentagpuError` leaves it with its message as the headline."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ensure_host_logging()
        try:
            return method(*args, **kwargs)
        except RentagpuError as error:
            raise error from Headline(str(error).splitlines()[0] if str(error) else "")

    return wrapper  # type: ignore[return-value]


def under_provider_host() -> bool:
    """True in the process Pulumi starts to run dynamic providers (`python -m pulumi.dynamic`)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == HOST_MODULE


class _HostFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def ensure_host_logging(*, force: bool = False) -> logging.Handler | None:
    """Under the provider host (or when forced, for tests), print the hook's INFO and WARNING lines
    on stderr, once; anywhere else, leave logging to the caller."""
    if not (force or under_provider_host()):
        return None
    logger = logging.getLogger(LOGGER)
    for handler in logger.handlers:
        if isinstance(handler.formatter, _HostFormatter):
            return handler
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_HostFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler
