"""A refused payload through the deployed function, called with the real SDK against the fake
Modal server: the call succeeds with the refusal, so Modal has nothing to retry, and the GPU list
the job sized the payload against is the one the deploy baked into the image."""

from __future__ import annotations

from modal_proto import api_pb2

from infra.modal_hook.client import run_modal
from infra.modal_hook.function_call import call_function
from tests.modal_hook.deploy_support import (
    APP,
    checked,
    deployment,
    runtime_values,
    seed,
)
from tests.modal_hook.support import FAST

SUCCESS = api_pb2.GenericResult.GENERIC_STATUS_SUCCESS


def call(version: int, payload: dict) -> object:
    async def operation(api):
        return await call_function(
            api,
            app=APP,
            function="run_gpu_job",
            version=version,
            environment="dev",
            payload=payload,
        )

    return run_modal("call the deployed function", operation, policy=FAST)


def test_a_refused_payload_is_a_successful_call_sized_against_the_deployed_gpus(
    deploy_modal_env, provider, source
):
    values = runtime_values()
    secret_id = seed(deploy_modal_env.state, values)
    created = provider.create(checked(provider, deployment(source, secret_id, values, gpus=["T4"])))
    runtime = deploy_modal_env.server.runtime

    # 24 GiB of float64 matrices: too big for a T4 (16 GB). On the default GPUs it would be
    # refused too, for time and naming `iters`, so a lost GPU list cannot start a real run here.
    payload = {"job": "matmul", "n": 32768, "dtype": "float64", "iters": 1000}
    result = call(created.outs["version"], payload)

    assert isinstance(result, dict)
    assert (result["status"], result["field"]) == ("refused", "n")
    assert "of memory on T4" in result["reason"]  # RENTAGPU_GPUS reached the container
    # Modal retries any status other than success or termination (modal/_functions.py
    # TERMINAL_STATUSES); a refusal is a success, so it runs exactly once.
    refusal = [c for c in runtime.calls.values() if c.payload.get("job") == "matmul"]
    assert len(refusal) == 1
    assert refusal[0].output.result.status == SUCCESS
    assert refusal[0].output.retry_count == 0


def test_the_smoke_judge_reports_a_refused_smoke_payload_with_its_reason() -> None:
    from infra.modal_hook.smoke import judge

    refused = {
        "status": "refused",
        "field": "job",
        "message": "job: 'healthcheck' is not a known job",
    }

    verdict = judge(refused)

    assert verdict.passed is False
    assert verdict.said == "it refused the smoke payload: job: 'healthcheck' is not a known job"
    assert judge({"ready": True, "device": "H100", "backend": "torch-cuda"}).passed is True
