"""The cost estimate: a payload that cannot finish within the function's timeout on the slowest
device it may land on is refused before any work, naming the field and how far it may go."""

from __future__ import annotations

import pytest

from modal_app import contract, cost
from modal_app.accelerator import Accelerator
from modal_app.context import JobContext
from modal_app.errors import PayloadError
from modal_app.executor import execute
from modal_app.jobs import matmul
from modal_app.payload import Fields

CPU = Accelerator("numpy-cpu", "test-cpu")
# A GPU container as the job sees it (torch is not installed here: nothing runs on it).
GPU = Accelerator("torch-cuda", "NVIDIA H100 80GB HBM3", None, "cuda")
DEFAULT = ("H100", "A100-80GB")


def refused(payload: dict, accelerator: Accelerator, gpus: str = "") -> PayloadError:
    """The refusal of a matmul payload. Parsed, never run: if the check failed to refuse, the test
    must fail, not start an hour of work on this machine."""
    environ = {contract.GPUS_VARIABLE: gpus} if gpus else {}
    context = JobContext(environ=environ, accelerator=accelerator)
    with pytest.raises(PayloadError) as error:
        matmul.parse(Fields(payload, "matmul", matmul.JOB.fields), context)
    return error.value


def test_the_issues_float64_matmul_is_refused_on_the_default_gpus_naming_iters() -> None:
    """2 x 32768^3 x 1000 is 7e16 FLOP: about two hours on an A100, past the 30-minute timeout."""
    error = refused({"job": "matmul", "n": 32768, "dtype": "float64", "iters": 1000}, GPU)

    assert error.field == "iters"
    assert "A100-80GB, the slowest device configured" in error.reason
    assert "over the 24 min a job may use (80% of the function's 30-minute timeout)" in error.reason
    most = int(error.reason.rsplit("iters may be at most ", 1)[1])
    assert 1 <= most < 1000
    # and the limit it names is exactly the largest that fits
    assert matmul.refusal(32768, "float64", most, DEFAULT) is None
    assert matmul.refusal(32768, "float64", most + 1, DEFAULT) is not None


def test_the_same_payload_on_the_cpu_at_n_4096_is_refused_too() -> None:
    error = refused({"job": "matmul", "n": 4096, "dtype": "float64", "iters": 1000}, CPU)

    assert error.field == "iters"
    assert "on CPU, over the 24 min" in error.reason


def test_a_size_that_fits_no_configured_gpus_memory_names_n_and_the_largest_n() -> None:
    error = refused({"job": "matmul", "n": 32768, "dtype": "float64", "iters": 1}, GPU, "H100,T4")

    assert error.field == "n"
    assert "of memory on T4" in error.reason
    largest = int(error.reason.split("n may be at most ")[1].split(" ")[0])
    assert matmul.refusal(largest, "float64", 1, ("H100", "T4")) is None
    assert matmul.refusal(largest + 1, "float64", 1, ("H100", "T4")) is not None


def test_the_gpu_list_comes_from_the_deploy_variable_and_the_slowest_one_decides() -> None:
    payload = {"job": "matmul", "n": 32768, "dtype": "bfloat16", "iters": 1000}
    fast = JobContext(environ={contract.GPUS_VARIABLE: "H100"}, accelerator=GPU)

    fields = Fields(payload, "matmul", matmul.JOB.fields)
    assert matmul.parse(fields, fast).iters == 1000  # accepted on H100 alone (parsed, not run)
    error = refused(payload, GPU, "H100,T4:2")
    assert error.field == "iters" and "on T4, the slowest device configured" in error.reason


def test_accepted_results_report_their_estimate() -> None:
    result = execute({"job": "matmul", "n": 64, "dtype": "float32", "iters": 2}, JobContext({}))

    assert result["estimate"]["flops"] == 2 * 64**3 * (2 + 1)  # one warm-up on the CPU
    assert set(result["estimate"]["seconds"]) == {"CPU"}
    assert result["estimate"]["budget_seconds"] == 24 * 60


def test_every_modal_gpu_type_has_figures_and_they_are_dense_and_sane() -> None:
    assert set(cost.DEVICES) == {*contract.GPU_TYPES, cost.CPU}
    for device in cost.DEVICES.values():
        assert set(device.flops) == set(cost.DTYPES)
        assert device.memory_bytes >= 16e9 or device.name == cost.CPU
        # no GPU's float64 is faster than its float32, nor float32 than its half precision
        assert device.flops["float64"] <= device.flops["float32"] <= device.flops["float16"]


@pytest.mark.parametrize(("seconds", "text"), [(5, "5 s"), (600, "10 min"), (7200, "2.0 h")])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert cost.duration(seconds) == text


def test_the_readme_table_of_refused_and_accepted_sizes_is_the_codes() -> None:
    from modal_app import limits_table
    from tests.modal_app.conftest import README

    generated = limits_table.markdown()
    text = README.read_text()
    begin, end = limits_table.BEGIN, limits_table.END
    assert begin in text and end in text, f"README lacks the markers {begin} ... {end}"
    shown = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert shown == generated.strip(), (
        "the README's table is out of date: paste the output of `python -m modal_app.limits_table`"
    )
