"""The Modal app: one GPU function, `run_gpu_job(payload)`, that runs jobs from the registry.

The only module that imports modal. Importing it declares the app and makes no network call;
`modal deploy -m modal_app.app` (run from the repository root) publishes it. Deploy-time choices
come from the deploying process's environment (see `modal_app.options`):
- `MODAL_APP_NAME` (default rentagpu-executor)
- `RENTAGPU_GPUS`: comma-separated GPU types, first choice first (default H100,A100-80GB)
- `RENTAGPU_AWS_AUTH`: oidc (default) or access-key: which keys the runtime secret must hold.
The job code is imported inside the function, so deploying needs only modal installed locally.

Containers import this module too, but Modal runs the deployed definition, and they see none of the
deploying process's variables. The GPU list is baked into the image (`RENTAGPU_GPUS`) because the
jobs need it at run time: a payload's cost is checked against the slowest GPU it may land on.

A refused payload is returned, not raised (see `modal_app.executor.handle`): Modal 1.6.4 retries
every failure alike, so a raised `PayloadError` would start a GPU container three times for a
request that can never succeed.
"""

from __future__ import annotations

import os

import modal

from modal_app import contract, cost, options

APP_NAME = options.app_name(os.environ)
GPUS = options.gpu_choices(os.environ)
AUTH_MODE = options.auth_mode(os.environ)

PYTHON_VERSION = "3.11"  # the same as the callers', so pickled payloads and errors round-trip
# Exact pins: a rebuilt image must be the image that was tested.
PACKAGES = ("torch==2.15.0", "numpy==2.4.6", "boto3==1.44.8")
# Generous for the largest inputs; a hung job is cut off, not billed for a day. Jobs estimate their
# cost against it before starting (modal_app.cost), so a payload that cannot finish is refused.
TIMEOUT_S = cost.FUNCTION_TIMEOUT_S
# Retries cover lost containers and transient S3 errors; retried jobs are idempotent by job id.
# Payload errors are returned as results, so they are never retried (modal_app.executor.handle).
RETRIES = modal.Retries(max_retries=2, backoff_coefficient=2.0, initial_delay=5.0)

image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .pip_install(*PACKAGES)
    .env({contract.GPUS_VARIABLE: ",".join(GPUS)})
    .add_local_python_source("modal_app")
)
app = modal.App(APP_NAME, image=image)

# Modal's server checks the secret holds these keys when the deploy resolves it, so a
# half-written secret fails the deploy instead of the first job.
REQUIRED_KEYS = contract.required_keys(AUTH_MODE)
runtime_secret = modal.Secret.from_name(contract.SECRET_NAME, required_keys=list(REQUIRED_KEYS))


@app.function(gpu=list(GPUS), timeout=TIMEOUT_S, retries=RETRIES, secrets=[runtime_secret])
def run_gpu_job(payload: dict) -> dict:
    """Run one job, e.g. `{"job": "healthcheck"}`; see `modal_app.registry` for the jobs.

    A refused payload returns `{"status": "refused", "field": ..., "reason": ...}`.
    """
    from modal_app.executor import handle

    return handle(payload)
