"""The Modal app definition: deploy-time variables, and an import that makes no network call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modal_app import options
from modal_app.errors import OptionsError

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh process with every socket connection refused: importing the app, and running
# healthcheck and matmul through `.local`, must not need one.
_NO_NETWORK_SCRIPT = """
import json, socket, sys

attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import modal_app.app as app_module
loaded_for_deploy = sorted(m for m in ("numpy", "boto3", "botocore") if m in sys.modules)
fn = app_module.run_gpu_job
health = fn.local({"job": "healthcheck"})
bench = fn.local({"job": "matmul", "n": 128, "dtype": "float32", "iters": 2})
print(json.dumps({
    "app_name": app_module.app.name,
    "gpus": list(app_module.GPUS),
    "spec_gpus": fn._spec_.gpus,  # modal is pinned (1.6.4): what FunctionCreate will carry
    "required_keys": list(app_module.REQUIRED_KEYS),
    "packages": list(app_module.PACKAGES),
    "health": health,
    "bench": bench,
    "attempts": attempts,
    "loaded_for_deploy": loaded_for_deploy,
}))
"""


def run_app(**variables: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "RENTAGPU_", "AWS_"))}
    env |= {"MODAL_CONFIG_PATH": os.devnull, "PYTHONPATH": str(ROOT)} | variables
    done = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_app_imports_and_runs_local_jobs_without_network() -> None:
    seen = run_app()

    assert seen["attempts"] == []
    assert seen["loaded_for_deploy"] == []  # `modal deploy` needs only modal, not the job stack
    assert seen["app_name"] == "rentagpu-executor"
    assert seen["gpus"] == seen["spec_gpus"] == ["H100", "A100-80GB"]
    assert seen["required_keys"][-1] == "AWS_ROLE_ARN"
    assert seen["health"]["job"] == "healthcheck" and seen["health"]["backend"] == "numpy-cpu"
    assert seen["bench"]["tflops"] > 0
    assert all("==" in p for p in seen["packages"])


def test_deploy_variables_choose_name_gpus_and_secret_keys() -> None:
    seen = run_app(
        MODAL_APP_NAME="rentagpu-exec-test",
        RENTAGPU_GPUS="l4, T4:2",
        RENTAGPU_AWS_AUTH="access-key",
    )

    assert seen["app_name"] == "rentagpu-exec-test"
    assert seen["gpus"] == seen["spec_gpus"] == ["L4", "T4:2"]
    assert seen["required_keys"][-2:] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def test_default_options() -> None:
    assert options.app_name({}) == "rentagpu-executor"
    assert options.gpu_choices({}) == ("H100", "A100-80GB")
    assert options.auth_mode({}) == "oidc"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("MODAL_APP_NAME", "my app", "at most 64 letters"),
        ("MODAL_APP_NAME", "a" * 65, "at most 64 letters"),
        ("MODAL_APP_NAME", "rentagpu\nx", "at most 64 letters"),
        ("RENTAGPU_GPUS", "H100,TPU-v5", "'TPU-v5' is not valid"),
        ("RENTAGPU_GPUS", "H100,", "'' is not valid"),
        ("RENTAGPU_GPUS", "H100:9", "'H100:9' is not valid"),
        ("RENTAGPU_GPUS", "h100,H100", "lists the same GPU twice"),
        ("RENTAGPU_AWS_AUTH", "sso", "expected one of: oidc, access-key"),
    ],
)
def test_a_bad_deploy_variable_is_named(variable: str, value: str, words: str) -> None:
    read = {
        "MODAL_APP_NAME": options.app_name,
        "RENTAGPU_GPUS": options.gpu_choices,
        "RENTAGPU_AWS_AUTH": options.auth_mode,
    }[variable]

    with pytest.raises(OptionsError) as error:
        read({variable: value})

    assert str(error.value).startswith(f"{variable}: ")
    assert words in str(error.value)


def test_image_packages_are_pinned_exactly_to_the_tested_versions() -> None:
    from importlib.metadata import version

    from modal_app.app import PACKAGES

    pins = dict(p.split("==") for p in PACKAGES)
    assert set(pins) == {"torch", "numpy", "boto3"}
    assert all(v[0].isdigit() and "*" not in v for v in pins.values())
    # The image runs the code these tests ran (torch is not installed here; the bench covers it).
    assert pins["numpy"] == version("numpy")
    assert pins["boto3"] == version("boto3")
