"""Every error type that rentagpu raises on purpose, in one place callers can catch.

Messages name the key, field or system at fault and say what would fix it. None of them ever
carries a secret value: callers build messages from key names and allowed values only.
"""

from __future__ import annotations

import enum


class RentagpuError(Exception):
    """Base class: anything rentagpu reports to a user as a clear, actionable message."""


class ConfigError(RentagpuError):
    """Stack config is wrong. Holds every problem found, so a user fixes them all in one pass."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(
            f"stack '{stack}' config has {len(self.problems)} {noun}; nothing was changed:\n{lines}"
        )


class ModalHookError(RentagpuError):
    """A Modal operation failed; the message says what failed and how to fix it."""


class Failure(enum.Enum):
    """Why a Modal call failed, for callers that handle some failures (NOT_FOUND on a read)."""

    AUTH = "auth"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    INVALID = "invalid"
    UNIMPLEMENTED = "unimplemented"
    OTHER = "other"


class ModalCallError(ModalHookError):
    """A Modal call failed; `failure` says how, the message says what to do about it."""

    def __init__(self, failure: Failure, message: str, *, rpc: str = "") -> None:
        super().__init__(message)
        self.failure = failure
        self.rpc = rpc


class FunctionCallError(ModalHookError):
    """A call of a deployed Modal function gave no result rentagpu accepts.

    The function failed (its error as Modal's text, never unpickled), Modal ended the call (a
    timeout, a lost container), or its output was refused: anything but CBOR, pickle above all, is
    never decoded. `refused_format` names the refused data format ("" when nothing was refused).
    """

    def __init__(self, message: str, *, refused_format: str = "") -> None:
        super().__init__(message)
        self.refused_format = refused_format


class DeployError(RentagpuError):
    """The app deploy, its smoke test or its rollback failed."""


class ReportError(RentagpuError):
    """Engine JSON given to a report command is not what `pulumi` prints."""


class RotationError(RentagpuError):
    """A rotation step failed or was refused; the message says what still works and what next."""


class StackCommandError(RentagpuError):
    """A `pulumi` command failed; the message names the command (never a value) and its exit."""


class StackUpError(StackCommandError):
    """`pulumi up` failed."""


class IncidentError(RentagpuError):
    """The incident command could not do what was asked (not: a check found the old value)."""


class AuditError(RentagpuError):
    """A system the audit or doctor reads refused or failed; the message names the call, never a
    credential."""
