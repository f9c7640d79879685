"""The Modal app: one GPU function, `run_gpu_job(payload)`, that runs jobs from the registry.

The only module that imports modal. Importing it declares the app and makes no network call;
`modal deploy -m modal_app.app` (run from the repository root) publishes it. Deploy-time choices
come from the deploying process's environment (see `modal_app.options`):
- `MODAL_APP_NAME` (default rentagpu-executor)
- `RENTAGPU_GPUS`: comma-separated GPU types, first choice first (default H100,A100-80GB)
- `RENTAGPU_AWS_AUTH`: oidc (default) or access-key: which keys the runtime secret must hold.
The job code is imported inside the function, so deploying needs only modal installed locally.
"""

from __future__ import annotations

import os

import modal

from modal_app import contract, options

APP_NAME = options.app_name(os.environ)
GPUS = options.gpu_choices(os.environ)
AUTH_MODE = options.auth_mode(os.environ)

PYTHON_VERSION = "3.11"  # the same as the callers', so pickled payloads and errors round-trip
# Exact pins: a rebuilt image must be the image that was tested.
PACKAGES = ("torch==2.15.0", "numpy==2.4.6", "boto3==1.44.8")
TIMEOUT_S = 30 * 60  # generous for the largest inputs; a hung job is cut off, not billed for a day
# Retries cover lost containers and transient S3 errors; retried jobs are idempotent by job id.
RETRIES = modal.Retries(max_retries=2, backoff_coefficient=2.0, initial_delay=5.0)

image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .pip_install(*PACKAGES)
    .add_local_python_source("modal_app")
)
app = modal.App(APP_NAME, image=image)

# Modal's server checks the secret holds these keys when the deploy resolves it, so a
# half-written secret fails the deploy instead of the first job.
REQUIRED_KEYS = contract.required_keys(AUTH_MODE)
runtime_secret = modal.Secret.from_name(contract.SECRET_NAME, required_keys=list(REQUIRED_KEYS))


@app.function(gpu=list(GPUS), timeout=TIMEOUT_S, retries=RETRIES, secrets=[runtime_secret])
def run_gpu_job(payload: dict) -> dict:
    """Run one job, e.g. `{"job": "healthcheck"}`; see `modal_app.registry` for the jobs."""
    from modal_app.executor import execute

    return execute(payload)
