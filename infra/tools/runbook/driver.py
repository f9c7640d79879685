"""How rotation drives a stack: `StackDriver`, and `PulumiCliDriver`, the real one.

Tests drive stacks in-process through the same protocol; the real driver shells out to `pulumi`
with secret values on stdin, never in argv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from infra.core.config import RawValue
from infra.core.config_schema import ENVIRONMENTS
from infra.core.config_sources import config_from_json
from infra.core.errors import StackCommandError, StackUpError
from infra.core.secrets import redact
from infra.core.wire import unwrap

PROJECT_DIR = Path(__file__).resolve().parents[3]  # the repository root


@dataclass(frozen=True)
class StateResource:
    """One resource of the stack's current checkpoint; outputs with secrets decrypted."""

    type: str
    name: str
    id: str
    outputs: Mapping[str, Any] = field(repr=False)


class StackDriver(Protocol):
    """What the commands need from a stack; `PulumiCliDriver` runs the real `pulumi` CLI."""

    stack: str

    def get_config(self) -> dict[str, RawValue]:
        """Every config key of the stack (`ns:key`), secure values decrypted, flagged secret."""
        ...

    def set_config(self, key: str, value: str, *, secret: bool, path: bool = False) -> None: ...

    def remove_config(self, key: str, *, path: bool = False) -> None: ...

    def up(self) -> None:
        """Run the update; raise `StackUpError` when it fails."""
        ...

    def outputs(self) -> dict[str, Any]: ...

    def state_resources(self) -> list[StateResource]: ...


@dataclass(frozen=True)
class PulumiCall:
    """One `pulumi` invocation. `stdin` carries values (secrets included): never argv."""

    argv: tuple[str, ...]
    stdin: str | None = field(default=None, repr=False)
    capture: bool = True  # False streams to the user's terminal (`pulumi up` shows progress)


@dataclass(frozen=True)
class CompletedCall:
    returncode: int
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)


def run_pulumi(call: PulumiCall, cwd: Path) -> CompletedCall:
    """Run one call; a value goes through a pipe, so no process list or shell history shows it."""
    try:
        done = subprocess.run(  # noqa: S603 - argv built by PulumiCliDriver, no shell
            list(call.argv),
            input=call.stdin if call.stdin is not None else None,
            stdin=None if call.stdin is not None else subprocess.DEVNULL,
            capture_output=call.capture,
            text=True,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise StackCommandError(
            f"`{call.argv[0]}` was not found: install the Pulumi CLI "
            "(https://www.pulumi.com/docs/iac/download-install/) and log in to the stack's backend"
        ) from None
    return CompletedCall(done.returncode, done.stdout or "", done.stderr or "")


class PulumiCliDriver:
    """`StackDriver` over the `pulumi` CLI, run in the project directory."""

    def __init__(
        self,
        stack: str,
        *,
        runner: Callable[[PulumiCall], CompletedCall] | None = None,
        pulumi: str = "pulumi",
        cwd: Path = PROJECT_DIR,
    ) -> None:
        self.stack = stack
        self._pulumi = pulumi
        self._runner = runner or (lambda call: run_pulumi(call, cwd))

    # The argv of each operation, separate so tests can check them without running anything.
    def config_call(self) -> PulumiCall:
        return PulumiCall(
            (self._pulumi, "config", "--stack", self.stack, "--json", "--show-secrets")
        )

    def set_config_call(self, key: str, value: str, *, secret: bool, path: bool) -> PulumiCall:
        mode = "--secret" if secret else "--plaintext"
        flags = (mode, "--path") if path else (mode,)
        return PulumiCall(
            (self._pulumi, "config", "set", "--stack", self.stack, *flags, key), stdin=value
        )

    def remove_config_call(self, key: str, *, path: bool) -> PulumiCall:
        flags = ("--path",) if path else ()
        return PulumiCall((self._pulumi, "config", "rm", "--stack", self.stack, *flags, key))

    def up_call(self) -> PulumiCall:
        return PulumiCall((self._pulumi, "up", "--yes", "--stack", self.stack), capture=False)

    def outputs_call(self) -> PulumiCall:
        # The program exports no secret, so no --show-secrets here.
        return PulumiCall((self._pulumi, "stack", "output", "--stack", self.stack, "--json"))

    def export_call(self) -> PulumiCall:
        # Secrets are needed: an old key's secret to prove it is refused, values to search.
        return PulumiCall(
            (self._pulumi, "stack", "export", "--stack", self.stack, "--show-secrets")
        )

    def _run(self, call: PulumiCall, error: type[StackCommandError] = StackCommandError) -> str:
        done = self._runner(call)
        if done.returncode != 0:
            last = (done.stderr or "").strip().splitlines()[-1:] or [""]
            detail = redact(last[0], [call.stdin or ""])[:300]
            raise error(
                f"`{' '.join(call.argv)}` exited {done.returncode}"
                + (f": {detail}" if detail else "")
            )
        return done.stdout

    def get_config(self) -> dict[str, RawValue]:
        return config_from_json(self._run(self.config_call()), self.stack)

    def set_config(self, key: str, value: str, *, secret: bool, path: bool = False) -> None:
        self._run(self.set_config_call(key, value, secret=secret, path=path))

    def remove_config(self, key: str, *, path: bool = False) -> None:
        self._run(self.remove_config_call(key, path=path))

    def up(self) -> None:
        self._run(self.up_call(), StackUpError)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self._run(self.outputs_call()) or "{}")

    def state_resources(self) -> list[StateResource]:
        return resources_from_export(json.loads(self._run(self.export_call())))


def resources_from_export(document: Mapping[str, Any]) -> list[StateResource]:
    resources = (document.get("deployment") or {}).get("resources") or []
    return [
        StateResource(
            type=str(r.get("type", "")),
            name=str(r.get("urn", "")).rsplit("::", 1)[-1],
            id=str(r.get("id", "")),
            outputs=unwrap(r.get("outputs") or {}),
        )
        for r in resources
    ]


def other_stack_drivers(stack: str, make: Callable[[str], StackDriver]) -> dict[str, StackDriver]:
    return {other: make(other) for other in ENVIRONMENTS if other != stack}


@dataclass(frozen=True)
class Console:
    """Where a runbook command reads and writes, and how it reaches each stack. The defaults are
    the operator's terminal and the `pulumi` CLI; tests pass in-process stacks and buffers."""

    drivers: Callable[[str], StackDriver] = PulumiCliDriver
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def driver(self, stack: str) -> StackDriver:
        return self.drivers(stack)

    def peers(self, stack: str) -> dict[str, StackDriver]:
        """Drivers of every other stack of the project."""
        return other_stack_drivers(stack, self.drivers)


def names_config(driver: StackDriver, notes: list[str]) -> dict[str, RawValue]:
    """The stack's config for commands that need only its names (repository, environment,
    serials): from the backend, or, when it cannot be asked, from the stack file in the checkout
    (which holds secrets only encrypted). What was read is added to `notes`."""
    from infra.core.config_sources import config_from_stack_file
    from infra.core.errors import RentagpuError

    try:
        return driver.get_config()
    except RentagpuError as error:
        path = PROJECT_DIR / f"Pulumi.{driver.stack}.yaml"
        try:
            raw = config_from_stack_file(path)
        except (OSError, RentagpuError):
            notes.append(f"stack config unreadable ({error}); names below use placeholders")
            return {}
        notes.append(f"the backend was not asked ({error}): names below come from {path.name}")
        return raw
