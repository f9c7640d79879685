"""How the Modal hook talks to Modal: credentials from the environment, bounded time, one clear error.

Every provider method opens one connection with `run_modal(action, operation)`, sends its RPCs
through `ModalApi.call`, and closes it. This module is the only place that touches the SDK's
connection internals (`modal.client._Client`, its stubs), so a `modal` upgrade is checked here, and
`modal==1.6.4` is pinned because the fake server in tests speaks exactly that protocol.

Why not the SDK's own defaults:
- Credentials are read from `MODAL_TOKEN_ID` / `MODAL_TOKEN_SECRET` / `MODAL_SERVER_URL` when a
  provider method runs, never stored on the provider (Pulumi pickles it into state), and never
  taken from a `~/.modal.toml` profile that happens to be on the machine running `pulumi`.
- The SDK retries an unreachable server for about a minute and a hung RPC forever. Here the
  connection gets `CallPolicy.connect_timeout_s`, each attempt `attempt_timeout_s`, and the whole
  operation `deadline_s`; transient statuses are retried with capped exponential backoff.
- SDK errors carry the server's text and a stack of SDK frames. Each failure here becomes one
  `ModalCallError` (a `ModalHookError`, in `infra.core.errors`) that says what failed and what
  fixes it. The hook's own
  text is built from names only; the server's text is quoted with the token and every secret
  value the caller names replaced by `[secret]`, and no SDK exception is chained onto it.

`import modal` takes seconds and reads the user's Modal profile, so it happens inside the functions
that need it; importing this module imports neither `modal` nor `pulumi`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from infra.core.errors import Failure, ModalCallError
from infra.core.secrets import SecretStr, redact

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_ID_VARIABLE = "MODAL_TOKEN_ID"
TOKEN_SECRET_VARIABLE = "MODAL_TOKEN_SECRET"
SERVER_URL_VARIABLE = "MODAL_SERVER_URL"
# Modal's own endpoints (modal.config.DEFAULT_SERVER_URL in 1.6.4), used when MODAL_SERVER_URL is
# unset; kept here so that reading the environment needs no `import modal`.
DEFAULT_SERVER_URL = "https://api.modal.com,https://api.modal2.com"


@dataclass(frozen=True)
class CallPolicy:
    """Time bounds and retries for one provider operation. Non-secret, so safe on a provider.

    Defaults: an unreachable server fails after `connect_timeout_s` (10 s); a server that stops
    answering fails after at most `deadline_s` (30 s); UNAVAILABLE / DEADLINE_EXCEEDED answers
    are retried up to `max_attempts` times per RPC, waiting 0.25 s, 0.5 s, 1 s, ... (capped).
    """

    connect_timeout_s: float = 10.0
    attempt_timeout_s: float = 8.0
    deadline_s: float = 30.0
    max_attempts: int = 4
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "attempt_timeout_s", "deadline_s", "backoff_initial_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CallPolicy.{name} must be positive")
        if self.max_attempts < 1:
            raise ValueError("CallPolicy.max_attempts must be at least 1")

    def backoff(self, retry_number: int) -> float:
        return min(self.backoff_initial_s * 2 ** (retry_number - 1), self.backoff_max_s)


DEFAULT_POLICY = CallPolicy()


@dataclass(frozen=True)
class ModalCredentials:
    """Where to connect and with which token; the token parts never show in a repr or a pickle."""

    server_url: str
    token_id: SecretStr = field(repr=False)
    token_secret: SecretStr = field(repr=False)


def credentials_from_env(environ: Mapping[str, str] | None = None) -> ModalCredentials:
    """Read the Modal token and server from the environment, as the `modal` CLI in CI does."""
    env = os.environ if environ is None else environ
    token_id = env.get(TOKEN_ID_VARIABLE, "").strip()
    token_secret = env.get(TOKEN_SECRET_VARIABLE, "").strip()
    missing = [
        name
        for name, value in ((TOKEN_ID_VARIABLE, token_id), (TOKEN_SECRET_VARIABLE, token_secret))
        if not value
    ]
    if missing:
        raise ModalCallError(
            Failure.AUTH,
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. The Modal "
            "hook reads its token from the environment of the process running pulumi: export "
            f"{TOKEN_ID_VARIABLE} and {TOKEN_SECRET_VARIABLE} (a service user token for CI, or "
            "`modal token new` locally) and run again.",
        )
    server_url = env.get(SERVER_URL_VARIABLE, "").strip() or DEFAULT_SERVER_URL
    return ModalCredentials(server_url, SecretStr(token_id), SecretStr(token_secret))


# What grpclib reports when the server answered plain HTTP instead of gRPC (grpclib/client.py
# _raise_for_status, _raise_for_content_type): an HTTP status (404 maps to UNIMPLEMENTED) or a
# content type that is not application/grpc.
_NOT_GRPC = re.compile(r"Received :status = '(\d+)'|(?:Invalid|Missing) content-type")

# gRPC statuses worth another attempt: the server or the path to it was briefly unable to answer.
_RETRYABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})

_PERMISSION_FIX = (
    "Creating or deleting environments and setting roles needs a workspace manager's token. In a "
    "restricted environment a service user reaches secrets and apps only through its role: a "
    "workspace manager grants it with `modal environment roles update ENV USER --role "
    "contributor --service-user`."
)


def _classify(exc: BaseException) -> str:
    """The gRPC status name behind an SDK exception, from its public type where it has one."""
    from modal import exception as modal_exception

    by_type = (
        (modal_exception.AuthError, "UNAUTHENTICATED"),
        (modal_exception.NotFoundError, "NOT_FOUND"),
        (modal_exception.AlreadyExistsError, "ALREADY_EXISTS"),
        (modal_exception.PermissionDeniedError, "PERMISSION_DENIED"),
        (modal_exception.UnimplementedError, "UNIMPLEMENTED"),
        (modal_exception.ConflictError, "FAILED_PRECONDITION"),
        (modal_exception.InvalidError, "INVALID_ARGUMENT"),
        (modal_exception.ConnectionError, "UNAVAILABLE"),
    )
    for kind, status in by_type:
        if isinstance(exc, kind):
            return status
    # ServiceError covers UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED and UNKNOWN; the SDK keeps the
    # exact status on the instance (reading `.status` instead raises a DeprecationWarning).
    status = getattr(exc, "_grpc_status", None)
    if status is not None:
        return status.name
    if isinstance(exc, modal_exception.ServiceError):
        return "UNAVAILABLE"
    return type(exc).__name__


class ModalApi:
    """One open connection to Modal. `call` sends one RPC with bounded retries and clear errors."""

    def __init__(
        self,
        client: Any,
        credentials: ModalCredentials,
        policy: CallPolicy,
        action: str,
        secrets: Iterable[str],
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._policy = policy
        self._started = time.monotonic()
        self._action = action
        self._secrets = (
            credentials.token_id.reveal(),
            credentials.token_secret.reveal(),
            *secrets,
        )

    @property
    def server_url(self) -> str:
        return self._credentials.server_url

    @property
    def policy(self) -> CallPolicy:
        return self._policy

    def remaining_s(self) -> float:
        """Seconds left of the operation's `deadline_s` (counted from when the connection opened)."""
        return self._policy.deadline_s - (time.monotonic() - self._started)

    def error(self, failure: Failure, detail: str, *, rpc: str = "") -> ModalCallError:
        """A `ModalCallError` about this operation. `detail` must hold names, never values."""
        return ModalCallError(failure, f"Could not {self._action}: {detail}", rpc=rpc)

    async def connect(self) -> None:
        """Open the client within `connect_timeout_s`, so a dead server fails fast and plainly.

        Opening is where the SDK connects (and would retry for about a minute on its own).
        """
        timeout = self._policy.connect_timeout_s
        try:
            await asyncio.wait_for(self._client.__aenter__(), timeout)
        except Exception as exc:  # TimeoutError, OSError, or the SDK's own ConnectionError
            reason = type(exc).__name__
        else:
            return
        raise self.error(
            Failure.UNREACHABLE,
            f"no connection to the Modal server at {self.server_url} within {timeout:g} s "
            f"({reason}). Check {SERVER_URL_VARIABLE} (leave it unset for Modal's own servers), "
            "the network, and any HTTPS proxy settings.",
        )

    async def call(self, rpc: str, request: Any, *, attempt_timeout_s: float | None = None) -> Any:
        """Send `request` to `rpc`; retry transient failures; raise `ModalCallError` otherwise.

        `attempt_timeout_s` replaces the policy's for an RPC that Modal holds open on purpose (a
        long poll for a function's output).
        """
        from grpclib.exceptions import StreamTerminatedError
        from modal import exception as modal_exception

        method = getattr(self._client._stub, rpc)  # noqa: SLF001 - see the module docstring
        # One idempotency key for every attempt lets Modal recognise a retried mutation.
        idempotency_key = str(uuid.uuid4())
        policy = self._policy
        started = time.monotonic()
        for attempt in range(1, policy.max_attempts + 1):
            timeout = attempt_timeout_s or policy.attempt_timeout_s
            metadata = [
                ("x-idempotency-key", idempotency_key),
                ("x-retry-attempt", str(attempt - 1)),
            ]
            try:
                return await asyncio.wait_for(
                    method(request, retry=None, timeout=timeout, metadata=metadata),
                    timeout + 1.0,  # the gRPC deadline fires first; this guards the connect
                )
            except modal_exception.Error as exc:  # the SDK turns gRPC errors into these
                status = _classify(exc)
                message = redact(getattr(exc, "_grpc_message", None) or str(exc), self._secrets)
            except (TimeoutError, OSError, StreamTerminatedError) as exc:
                status = "DEADLINE_EXCEEDED" if isinstance(exc, TimeoutError) else "UNAVAILABLE"
                message = type(exc).__name__
            # Raised outside the `except` blocks, so the SDK's exception (which carries the
            # server's text) is not chained onto ours and cannot leak through a traceback.
            if status not in _RETRYABLE or attempt == policy.max_attempts:
                break
            delay = policy.backoff(attempt)
            log.warning(
                "Modal %s answered %s; retrying in %.2f s (attempt %d of %d)",
                rpc,
                status,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            await asyncio.sleep(delay)
        raise self._mapped(rpc, status, message, attempt, started)

    async def call_or_none(self, rpc: str, request: Any) -> Any | None:
        """`call`, answering None where Modal says NOT_FOUND (a lookup, a delete of what is gone)."""
        try:
            return await self.call(rpc, request)
        except ModalCallError as exc:
            if exc.failure is Failure.NOT_FOUND:
                return None
            raise

    def _mapped(
        self, rpc: str, status: str, message: str, attempts: int, started: float
    ) -> ModalCallError:
        not_grpc = _NOT_GRPC.search(message)
        if not_grpc:
            answered = f"HTTP {not_grpc.group(1)}" if not_grpc.group(1) else "something not gRPC"
            return self.error(
                Failure.UNREACHABLE,
                f"{SERVER_URL_VARIABLE}={self.server_url} does not point at a Modal server: it "
                f"answered {rpc} with {answered}, where Modal answers gRPC. Leave "
                f"{SERVER_URL_VARIABLE} unset for Modal's own servers, or set it to your Modal "
                "API endpoint.",
                rpc=rpc,
            )
        said = f" (Modal said: {message})" if message else ""
        if status == "UNAUTHENTICATED":
            return self.error(
                Failure.AUTH,
                f"Modal rejected the token in {TOKEN_ID_VARIABLE}/{TOKEN_SECRET_VARIABLE}{said}. "
                "Check that both hold a current token of the intended workspace (`modal token "
                "info` shows which), or issue a new one and update the variables (in CI: the "
                "GitHub environment secrets of this stack).",
                rpc=rpc,
            )
        if status == "PERMISSION_DENIED":
            return self.error(
                Failure.PERMISSION_DENIED,
                f"permission denied, the token may not do this{said}. {_PERMISSION_FIX}",
                rpc=rpc,
            )
        if status == "NOT_FOUND":
            return self.error(Failure.NOT_FOUND, f"not found{said}.", rpc=rpc)
        if status == "ALREADY_EXISTS":
            return self.error(Failure.ALREADY_EXISTS, f"it already exists{said}.", rpc=rpc)
        if status in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"):
            return self.error(Failure.INVALID, f"Modal refused the request{said}.", rpc=rpc)
        if status == "UNIMPLEMENTED":
            return self.error(
                Failure.UNIMPLEMENTED,
                f"the Modal server does not implement {rpc}{said}. rentagpu pins modal==1.6.4; "
                "check that the server and the client version match.",
                rpc=rpc,
            )
        if status in _RETRYABLE:
            elapsed = time.monotonic() - started
            if status == "DEADLINE_EXCEEDED":
                failure, what = Failure.TIMEOUT, f"did not answer {rpc} in time"
            else:
                failure, what = Failure.UNAVAILABLE, f"answered {rpc} with {status}"
            return self.error(
                failure,
                f"the Modal server at {self.server_url} {what} {attempts} times in "
                f"{elapsed:.1f} s{said}. Modal may be degraded (https://status.modal.com); "
                "run again later.",
                rpc=rpc,
            )
        return self.error(Failure.OTHER, f"Modal answered {rpc} with {status}{said}.", rpc=rpc)


def run_modal(
    action: str,
    operation: Callable[[ModalApi], Awaitable[T]],
    *,
    policy: CallPolicy = DEFAULT_POLICY,
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> T:
    """Run `operation` against Modal and return its result; the entry point of every provider call.

    `action` completes "Could not ..." in error messages (e.g. "create Modal secret 'x' in 'dev'").
    `secrets` are values that must never appear in an error. Blocks the calling thread; works both
    in a plain thread (Pulumi's provider server) and under a running event loop (tests, mocks).
    """
    credentials = credentials_from_env(environ)
    secret_values = tuple(secrets)

    async def main() -> T:
        from modal.client import _Client
        from modal_proto import api_pb2

        client = _Client(
            credentials.server_url,
            api_pb2.CLIENT_TYPE_CLIENT,
            (credentials.token_id.reveal(), credentials.token_secret.reveal()),
        )
        api = ModalApi(client, credentials, policy, action, secret_values)

        async def connected() -> T:
            await api.connect()
            return await operation(api)

        try:
            return await asyncio.wait_for(connected(), policy.deadline_s)
        except TimeoutError:
            raise api.error(
                Failure.TIMEOUT,
                f"the Modal server at {credentials.server_url} did not finish within "
                f"{policy.deadline_s:g} s. Modal may be degraded (https://status.modal.com); "
                "run again later.",
            ) from None
        finally:
            await client.close()  # also cancels a connection attempt still in flight

    return _run_blocking(main)


def _run_blocking(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main()` to completion on a private thread with its own event loop.

    Never on the caller's thread: `asyncio.run` there would fail under a running loop (Pulumi's
    mocks, tests) and, on the main thread, would unset its current event loop and take over
    SIGINT, which breaks the Pulumi runtime that shares that thread.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(main())  # type: ignore[arg-type]
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="modal-hook", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
