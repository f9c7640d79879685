"""Pytest fixtures for the fake Modal server (registered for every test by tests/conftest.py).

`fake_modal` starts a fresh server (its own workspace, owner token, and the CI service user
`rentagpu-ci`) for one test and yields a `FakeModal` handle. `modal_env` additionally exports the
server's MODAL_* variables into the test process (via monkeypatch), which is how the hook's
providers find it. `FakeModal.cli(...)` runs the real `modal` CLI against the same server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grpclib import Status

from tests.fakes.modal_server import FakeModalServer, RecordedCall
from tests.fakes.modal_state import FakeModalState

CI_SERVICE_USER = "rentagpu-ci"


class FakeModal:
    """A running fake server plus what a test needs to point Modal clients at it."""

    def __init__(self, server: FakeModalServer, config_path: Path) -> None:
        self.server = server
        self.config_path = config_path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token_id(self) -> str:
        return self.server.token_id

    @property
    def token_secret(self) -> str:
        return self.server.token_secret

    @property
    def state(self) -> FakeModalState:
        return self.server.state

    @property
    def calls(self) -> list[RecordedCall]:
        return self.server.calls

    def rpc_names(self) -> list[str]:
        return self.server.rpc_names()

    def mutating_calls(self) -> list[RecordedCall]:
        return self.server.mutating_calls()

    def unimplemented_calls(self) -> list[RecordedCall]:
        return self.server.unimplemented_calls()

    def clear_calls(self) -> None:
        self.server.clear_calls()

    def inject(
        self,
        rpc: str,
        status: Status = Status.UNAVAILABLE,
        times: int | None = 1,
        message: str = "",
    ) -> None:
        self.server.inject(rpc, status, times, message)

    def hang_next(self, rpc: str, times: int | None = 1, seconds: float | None = None) -> None:
        self.server.hang_next(rpc, times, seconds)

    def environ(self, token: tuple[str, str] | None = None) -> dict[str, str]:
        """The MODAL_* variables that point a client at this server (owner token by default)."""
        token_id, token_secret = token or (self.token_id, self.token_secret)
        return {
            "MODAL_SERVER_URL": self.url,
            "MODAL_TOKEN_ID": token_id,
            "MODAL_TOKEN_SECRET": token_secret,
            "MODAL_CONFIG_PATH": str(self.config_path),
        }

    def use(self, monkeypatch: pytest.MonkeyPatch, token: tuple[str, str] | None = None) -> None:
        """Export this server's MODAL_* variables into the test process."""
        for name, value in self.environ(token).items():
            monkeypatch.setenv(name, value)
        for name in ("MODAL_PROFILE", "MODAL_ENVIRONMENT"):
            monkeypatch.delenv(name, raising=False)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run the real `modal` CLI (`.venv/bin/modal ARGS`) against this server."""
        executable = Path(sys.executable).with_name("modal")
        command = [str(executable)] if executable.exists() else [sys.executable, "-m", "modal"]
        env = {key: value for key, value in os.environ.items() if not key.startswith("MODAL_")}
        env.update(self.environ(), NO_COLOR="1", TERM="dumb", COLUMNS="200")
        result = subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`modal {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result


@pytest.fixture
def fake_modal_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], FakeModal]]:
    """Start extra, independent fake servers (e.g. one per client being compared)."""
    started: list[FakeModalServer] = []

    def start() -> FakeModal:
        config_dir = tmp_path_factory.mktemp("modal-config")
        config_path = config_dir / "modal.toml"
        config_path.write_text("")  # an empty profile: nothing from a developer's ~/.modal.toml
        server = FakeModalServer().start()
        started.append(server)
        server.state.add_service_user(CI_SERVICE_USER)
        return FakeModal(server, config_path)

    try:
        yield start
    finally:
        for server in started:
            server.stop()
    bugs = [call.rpc for server in started for call in server.fake_bugs()]
    assert not bugs, f"the fake Modal server crashed handling {bugs}"


@pytest.fixture(scope="session")
def _shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeModal]:
    config_path = tmp_path_factory.mktemp("modal-config-shared") / "modal.toml"
    config_path.write_text("")
    server = FakeModalServer().start()
    server.state.add_service_user(CI_SERVICE_USER)
    try:
        yield FakeModal(server, config_path)
    finally:
        server.stop()
    bugs = [call.rpc for call in server.fake_bugs()]
    assert not bugs, f"the shared fake Modal server crashed handling {bugs}"


@pytest.fixture
def shared_modal(_shared_server: FakeModal, monkeypatch: pytest.MonkeyPatch) -> FakeModal:
    """One fake server for the whole session, for tests that only read it: a lookup, a refused
    token, a misspelt fault. Its state is never reset, so a test that changes the server's state
    takes `fake_modal` instead; the call log and injected faults are cleared for each test, and
    its MODAL_* variables are exported (as `modal_env` does)."""
    _shared_server.clear_calls()
    _shared_server.server.clear_faults()
    _shared_server.use(monkeypatch)
    return _shared_server


@pytest.fixture
def fake_modal(fake_modal_factory: Callable[[], FakeModal]) -> FakeModal:
    """A fresh fake server: a workspace with an owner token and the service user rentagpu-ci."""
    return fake_modal_factory()


@pytest.fixture
def modal_env(fake_modal: FakeModal, monkeypatch: pytest.MonkeyPatch) -> FakeModal:
    fake_modal.use(monkeypatch)
    return fake_modal
