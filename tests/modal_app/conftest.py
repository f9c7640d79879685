"""A bucket laid out as a stack lays it out, and the runtime secret's keys for each auth mode, with
the runtime principal holding exactly the policy `infra.iam.runtime_policy` renders."""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from infra.core import names
from infra.stages.aws import iam
from modal_app import contract
from modal_app.context import JobContext, s3_store
from modal_app.settings import Settings
from modal_app.storage import JobStore, Listed
from tests.fakes.aws_fixtures import MotoServer, unique, web_identity_token

README = Path(__file__).resolve().parents[2] / "README.md"
INPUT_PREFIX = "jobs/in/"
OUTPUT_PREFIX = "jobs/out/"
WORKSPACE = "ac-test0workspace"
ENVIRONMENT = "dev"
APP = "rentagpu-executor"
FUNCTION = "run_gpu_job"

# Inputs every test bucket starts with. MATRIX's columns have known statistics.
MATRIX = np.arange(24, dtype=np.float32).reshape(8, 3) * np.array(
    [1.0, -2.0, 0.5], dtype=np.float32
)
VALUES = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]

# A runtime secret's values, as the Pulumi program would write them (bucket-free unit tests).
COMMON = {
    contract.AWS_REGION: "eu-west-2",
    contract.BUCKET: "rentagpu-dev-data",
    contract.INPUT_PREFIX: "inputs/",
    contract.OUTPUT_PREFIX: "outputs/",
}
ROLE = "arn:aws:iam::123456789012:role/rentagpu/dev/rentagpu-dev-runtime"


def fake_key_pair() -> dict[str, str]:
    """An access key pair made at run time: no credential-shaped literal lives in the repo."""
    return {
        contract.ACCESS_KEY_ID: "TEST" + secrets.token_hex(8).upper(),
        contract.SECRET_ACCESS_KEY: secrets.token_urlsafe(30),
    }


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class Stack:
    """One stack's bucket and the runtime secret for one auth mode."""

    server: MotoServer
    bucket: str
    environ: dict[str, str]

    def snapshot(self) -> dict[str, str]:
        return self.server.snapshot(self.bucket)

    def read(self, key: str) -> bytes:
        return self.server.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()


def modal_subject(environment: str = ENVIRONMENT, app: str = APP, function: str = FUNCTION) -> str:
    """The `sub` Modal puts in a container's identity token."""
    return (
        f"modal:workspace_id:{WORKSPACE}:environment_name:{environment}:app_name:{app}"
        f":function_name:{function}:container_id:ta-{unique('c')[2:]}"
    )


def modal_token(subject: str | None = None) -> str:
    return web_identity_token(
        f"https://{names.MODAL_OIDC_HOST}", names.MODAL_OIDC_AUDIENCE, subject or modal_subject()
    )


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    name = moto_server.create_bucket()
    s3 = moto_server.client("s3")
    s3.put_object(Bucket=name, Key=f"{INPUT_PREFIX}matrix.npy", Body=npy_bytes(MATRIX))
    s3.put_object(Bucket=name, Key=f"{INPUT_PREFIX}values.json", Body=json.dumps(VALUES).encode())
    s3.put_object(Bucket=name, Key=f"{INPUT_PREFIX}broken.json", Body=b"[1, 2,")
    s3.put_object(Bucket=name, Key="private/matrix.npy", Body=npy_bytes(MATRIX))
    return name


def _common(server: MotoServer, bucket: str) -> dict[str, str]:
    return {
        contract.AWS_REGION: server.region,
        contract.BUCKET: bucket,
        contract.INPUT_PREFIX: INPUT_PREFIX,
        contract.OUTPUT_PREFIX: OUTPUT_PREFIX,
        contract.ENDPOINT_URL: server.endpoint_url,
    }


@pytest.fixture
def access_key_stack(moto_server: MotoServer, bucket: str) -> Stack:
    user = moto_server.create_principal(
        iam.runtime_policy(bucket, INPUT_PREFIX, OUTPUT_PREFIX), path=names.iam_path(ENVIRONMENT)
    )
    environ = _common(moto_server, bucket) | {
        contract.ACCESS_KEY_ID: user.credentials.access_key_id,
        contract.SECRET_ACCESS_KEY: user.credentials.secret_access_key,
    }
    return Stack(moto_server, bucket, environ)


@pytest.fixture
def oidc_stack(moto_server: MotoServer, bucket: str) -> Stack:
    provider = moto_server.ensure_oidc_provider(names.MODAL_OIDC_HOST, names.MODAL_OIDC_AUDIENCE)
    role_arn = moto_server.create_role(
        iam.modal_runtime_trust(provider, WORKSPACE, ENVIRONMENT, APP, FUNCTION),
        iam.runtime_policy(bucket, INPUT_PREFIX, OUTPUT_PREFIX),
        name=unique(names.role_name(ENVIRONMENT, "runtime")),
        path=names.iam_path(ENVIRONMENT),
    )
    environ = _common(moto_server, bucket) | {
        contract.ROLE_ARN: role_arn,
        contract.IDENTITY_TOKEN: modal_token(),
    }
    return Stack(moto_server, bucket, environ)


@pytest.fixture(params=[contract.ACCESS_KEY, contract.OIDC])
def stack(request: pytest.FixtureRequest) -> Stack:
    """The same tests in both auth modes."""
    fixture = "access_key_stack" if request.param == contract.ACCESS_KEY else "oidc_stack"
    return request.getfixturevalue(fixture)


class RecordingStore:
    """The real S3 store, with every call it makes written down (to prove what was not done)."""

    def __init__(self, inner: JobStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def read_input(
        self, key: str, field: str, max_bytes: int, *, etag: str = "", first_bytes: int = 0
    ) -> bytes:
        self.calls.append(("read_head" if first_bytes else "read_input", key))
        return self.inner.read_input(key, field, max_bytes, etag=etag, first_bytes=first_bytes)

    def stat(self, key: str) -> Listed | None:
        self.calls.append(("stat", key))
        return self.inner.stat(key)

    def list_keys(self, prefix: str, limit: int) -> list[str]:
        self.calls.append(("list_keys", prefix))
        return self.inner.list_keys(prefix, limit)

    def exists(self, key: str) -> bool:
        self.calls.append(("exists", key))
        return self.inner.exists(key)

    def put_once(self, key: str, body: bytes, content_type: str) -> bool:
        self.calls.append(("put_once", key))
        return self.inner.put_once(key, body, content_type)


@dataclass
class Recorder:
    """A JobContext over a stack whose stores record their calls; `opened` counts store creations."""

    environ: dict[str, str]
    stores: list[RecordingStore]

    def context(self) -> JobContext:
        def factory(settings: Settings, environ, session: str) -> JobStore:
            store = RecordingStore(s3_store(settings, environ, session))
            self.stores.append(store)
            return store

        return JobContext(environ=self.environ, store_factory=factory)

    @property
    def calls(self) -> list[tuple[str, str]]:
        return [call for store in self.stores for call in store.calls]


@pytest.fixture
def recorder(stack: Stack) -> Recorder:
    return Recorder(stack.environ, [])
