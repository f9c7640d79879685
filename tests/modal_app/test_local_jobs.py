"""`healthcheck` and `matmul` through the Modal function's `.local`: no secret, no network."""

from __future__ import annotations

import json
import pickle
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from modal_app import contract
from modal_app.accelerator import package_version
from modal_app.app import run_gpu_job
from modal_app.errors import PayloadError, SettingsError, raise_if_refused
from tests.modal_app.conftest import COMMON, ROLE, fake_key_pair


@pytest.fixture(autouse=True)
def no_runtime_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        *contract.COMMON_KEYS,
        *contract.OIDC_KEYS,
        *contract.ACCESS_KEY_KEYS,
        contract.IDENTITY_TOKEN,
    ):
        monkeypatch.delenv(name, raising=False)


def test_healthcheck_reports_what_this_machine_has() -> None:
    report = run_gpu_job.local({"job": "healthcheck"})

    assert report["job"] == "healthcheck"
    assert report["ready"] is False  # no GPU here, and no runtime secret
    assert report["backend"] == "numpy-cpu"
    assert "no CUDA GPU is visible: jobs run on the CPU" in report["problems"]
    assert report["frameworks"]["numpy"] == np.__version__
    assert report["frameworks"]["torch"] == package_version("torch")
    if package_version("torch") is None:
        assert "torch is not installed: jobs run on the CPU with NumPy" in report["problems"]
    if shutil.which("nvidia-smi") is None:
        assert report["gpus"] == [] and report["cuda"] is None
    assert any(p.startswith("runtime secret: AWS_REGION: is required") for p in report["problems"])
    json.dumps(report)  # the smoke test's caller gets it back as plain data


def test_the_healthcheck_report_travels_as_cbor_and_rentagpu_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The smoke job calls with CBOR, so the container encodes the report with cbor2
    (modal/_serialization.py:367-392) and the deploy decodes it as plain CBOR only: both the CPU
    report here and a GPU container's (torch's CUDA version, nvidia-smi's rows) must pass."""
    from modal._serialization import serialize_data_format
    from modal_proto import api_pb2

    from infra.modal_hook.function_call import decode_cbor
    from modal_app.accelerator import Accelerator
    from modal_app.context import JobContext
    from modal_app.executor import execute

    torch = SimpleNamespace(version=SimpleNamespace(cuda="12.8"))
    gpu = Accelerator("torch-cuda", "NVIDIA H100 80GB HBM3", torch, "cuda")  # type: ignore[arg-type]
    smi = [{"name": "NVIDIA H100 80GB HBM3", "driver": "570.86.15", "memory_mib": "81559"}]
    monkeypatch.setattr("modal_app.jobs.healthcheck.nvidia_smi", lambda: smi)
    for context in (JobContext(), JobContext(accelerator=gpu)):
        report = execute({"job": "healthcheck"}, context)
        sent = serialize_data_format(report, api_pb2.DATA_FORMAT_CBOR)
        assert decode_cbor(sent) == report
    assert report["cuda"] == "12.8" and report["gpus"] == smi


def test_healthcheck_checks_the_runtime_secret_and_identity_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in (COMMON | {contract.ROLE_ARN: ROLE}).items():
        monkeypatch.setenv(name, value)

    without_token = run_gpu_job.local({"job": "healthcheck"})
    monkeypatch.setenv(contract.IDENTITY_TOKEN, "a.b.c")
    with_token = run_gpu_job.local({"job": "healthcheck"})

    assert without_token["auth_mode"] == with_token["auth_mode"] == "oidc"
    assert any(p.startswith(contract.IDENTITY_TOKEN) for p in without_token["problems"])
    assert not any(
        "runtime secret" in p or contract.IDENTITY_TOKEN in p for p in with_token["problems"]
    )


def test_healthcheck_never_shows_a_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = fake_key_pair()
    for name, value in (COMMON | pair).items():
        monkeypatch.setenv(name, value)

    report = json.dumps(run_gpu_job.local({"job": "healthcheck"}))

    assert '"auth_mode": "access-key"' in report
    assert (
        pair[contract.SECRET_ACCESS_KEY] not in report
        and pair[contract.ACCESS_KEY_ID] not in report
    )


@pytest.mark.parametrize(
    ("dtype", "computed", "tolerance"),
    [("float64", "float64", 1e-12), ("float32", "float32", 1e-5), ("bfloat16", "float32", 1e-5)],
)
def test_matmul_reports_achieved_tflops_on_the_cpu(
    dtype: str, computed: str, tolerance: float
) -> None:
    result = run_gpu_job.local({"job": "matmul", "n": 256, "dtype": dtype, "iters": 3})

    assert result["backend"] == "numpy-cpu"
    assert (result["n"], result["dtype"], result["iters"]) == (256, dtype, 3)
    assert result["computed_dtype"] == computed  # NumPy has no bfloat16 kernel: said, not hidden
    assert result["seconds"] > 0
    assert result["tflops"] == pytest.approx(2 * 256**3 * 3 / result["seconds"] / 1e12)
    assert result["max_relative_error"] < tolerance


def test_matmul_defaults() -> None:
    result = run_gpu_job.local({"job": "matmul", "n": 64})
    assert (result["dtype"], result["iters"]) == ("bfloat16", 10)


def test_a_bad_payload_is_returned_as_a_refusal_not_raised() -> None:
    """Raised, Modal would retry it (every failure uses up a retry); returned, it succeeds once."""
    result = run_gpu_job.local({"job": "matmul", "n": -5})

    assert result == {
        "job": "matmul",
        "status": "refused",
        "error": "PayloadError",
        "field": "n",
        "reason": "-5 is out of range; expected 8-32768",
        "message": "n: -5 is out of range; expected 8-32768",
    }
    json.dumps(result)  # plain data, whatever format the caller asked Modal for
    with pytest.raises(PayloadError) as error:  # for callers who prefer the exception
        raise_if_refused(result)
    assert isinstance(error.value, ValueError)
    assert str(error.value) == result["message"]
    assert raise_if_refused({"job": "healthcheck", "ready": True}) == {
        "job": "healthcheck",
        "ready": True,
    }


def test_a_payload_that_is_not_even_a_dict_is_refused_too() -> None:
    result = run_gpu_job.local(["matmul"])
    assert (result["job"], result["status"], result["field"]) == (None, "refused", "payload")


@pytest.mark.parametrize(
    "error",
    [
        PayloadError("input_key", "is outside the input prefix"),
        SettingsError(["AWS_REGION: is required"]),
    ],
)
def test_errors_survive_the_pickle_modal_sends_them_back_in(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes

    assert type(copy) is type(error) and str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
