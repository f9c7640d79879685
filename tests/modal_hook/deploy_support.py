"""Inputs and helpers shared by the deploy tests."""

from __future__ import annotations

import secrets as _secrets
import shutil
from pathlib import Path
from typing import Any

from pulumi.dynamic import ResourceProvider

from infra.modal_hook.app_source import secret_fingerprint, source_hash
from infra.modal_hook.client import CallPolicy
from tests.fakes.modal_deploy import live_version
from tests.fakes.modal_state import FakeModalState

# Short RPC bounds for deploy tests, so a broken fake fails a test in seconds rather than minutes.
DEPLOY_POLICY = CallPolicy(
    connect_timeout_s=2.0,
    attempt_timeout_s=5.0,
    deadline_s=15.0,
    max_attempts=3,
    backoff_initial_s=0.01,
    backoff_max_s=0.05,
)

REPOSITORY = Path(__file__).resolve().parents[2]
APP = "rentagpu-executor"
SECRET = "rentagpu-runtime"
ROLE_ARN = "arn:aws:iam::123456789012:role/rentagpu/dev/rentagpu-dev-runtime"


def copy_source(root: Path) -> Path:
    """A checkout holding a snapshot of modal_app/ (other work may be editing the real one)."""
    shutil.copytree(
        REPOSITORY / "modal_app",
        root / "modal_app",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return root


def edit_source(root: Path, relative: str, line: str) -> None:
    path = root / "modal_app" / relative
    path.write_text(path.read_text() + f"\n{line}\n")


def revision() -> str:
    return _secrets.token_hex(20)


def runtime_values(**overrides: str) -> dict[str, str]:
    """A runtime secret the app accepts in OIDC mode (what the Modal stage writes)."""
    values = {
        "AWS_REGION": "eu-west-1",
        "RENTAGPU_BUCKET": "acme-ml-rentagpu-dev",
        "RENTAGPU_INPUT_PREFIX": "jobs/input/",
        "RENTAGPU_OUTPUT_PREFIX": "jobs/output/",
        "AWS_ROLE_ARN": ROLE_ARN,
    }
    return {**values, **overrides}


def seed(state: FakeModalState, values: dict[str, str], environment: str = "dev") -> str:
    """The Modal stage's work, done directly: the environment and the runtime secret."""
    if environment not in state.environments:
        state.add_environment(environment)
    return state.put_secret(environment, SECRET, values).id


def deployment(
    source: Path, secret_id: str, values: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    """The deployment's inputs, as the program passes them."""
    props = {
        "environment_name": "dev",
        "app_name": APP,
        "function_name": "run_gpu_job",
        "gpus": ["H100", "A100-80GB"],
        "auth_mode": "oidc",
        "runtime_secret_name": SECRET,
        "runtime_secret_id": secret_id,
        "secret_fingerprint": secret_fingerprint(values),
        "source_hash": source_hash(source),
        "modal_version": "1.6.4",
    }
    return {**props, **overrides}


def checked(provider: ResourceProvider, news: dict[str, Any], olds: dict[str, Any] | None = None):
    result = provider.check(olds or {}, news)
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return result.inputs


def live(state: FakeModalState, environment: str = "dev") -> tuple[int, str] | None:
    """(version, tag) live on the server, as `modal app history` shows it first."""
    version = live_version(state, environment, APP)
    return (version.version, version.tag) if version else None
