"""The errors the executor raises on purpose, in one place callers can catch.

`PayloadError` means "your request was wrong": retrying the same payload can never succeed, and
nothing was written. `SettingsError` means the runtime secret is wrong: an operator must fix the
Modal secret. `StorageError` is an S3 call that failed for a reason the payload does not explain.

`OptionsError` is a deploy-time variable (`MODAL_APP_NAME`, `RENTAGPU_GPUS`, ...) that stops a
deploy before anything reaches Modal.

Messages name the field or key at fault and say what is allowed. They never carry a credential:
they are built from key names, allowed values and the caller's own payload only.

Modal pickles an exception raised in a container and re-raises it in the caller, so every class
here survives a pickle round trip (`__reduce__`), which plain `Exception` subclasses with their own
`__init__` arguments do not.
"""

from __future__ import annotations

from modal_app.contract import REFUSED


class JobError(Exception):
    """Base class: a job could not run, for a reason the message explains."""


class PayloadError(JobError, ValueError):
    """A payload was refused before anything was read or written; `field` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def __reduce__(self):
        return (type(self), (self.field, self.reason))


def raise_if_refused(result: object) -> object:
    """`result` itself, unless it is a refusal (`run_gpu_job` returns those rather than raising
    them, so Modal never retries one): then the `PayloadError` it describes, for callers that
    prefer an exception."""
    if isinstance(result, dict) and result.get("status") == REFUSED:
        raise PayloadError(str(result.get("field")), str(result.get("reason")))
    return result


class SettingsError(JobError):
    """The runtime secret's keys are missing or invalid; holds every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(
            f"the runtime secret has {len(self.problems)} {noun}; fix the Modal secret "
            f"'rentagpu-runtime' (run `pulumi up`), nothing was read or written:\n{lines}"
        )

    def __reduce__(self):
        return (type(self), (self.problems,))


class StorageError(JobError):
    """An S3 call failed; the message names the operation and key, never a credential."""


class OptionsError(ValueError):
    """A deploy-time variable is wrong; the message names it and what is allowed."""
