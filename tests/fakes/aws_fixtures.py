"""moto's AWS server in IAM enforcement mode, for tests that must show a policy allows exactly what
it should and denies the rest.

Registered for every test by tests/conftest.py; the server starts only when a test asks for it.

`moto_server` (session-scoped) is a `MotoServer`: its endpoint, an admin principal for setting
things up, and helpers that create a principal with a given policy document and return its
credentials (`create_principal`), an OIDC provider, a web-identity role, and a bucket.

What moto 5.2.5 enforces here (checked by the tests that use this):
- Identity policies of IAM users and of assumed roles are enforced on every S3 call: Action and
  Resource, with wildcards. Unknown keys and a wrong session token are rejected.
- Condition blocks of identity policies are ignored (e.g. `s3:prefix` on ListBucket is not
  enforced), and permissions boundaries are not evaluated.
- `If-None-Match: *` on PutObject is honoured (412 when the key exists).
- AssumeRoleWithWebIdentity is an unsigned call, and moto's enforcement crashes on it (HTTP 500,
  it reads the missing Authorization header). The server here therefore handles that one call as
  AWS does: no signature needed, and the token's claims (decoded, NOT signature-checked) must
  satisfy the role's trust policy: federated principal = the OIDC provider of the token's issuer,
  `aud` in the provider's client ids, StringEquals/StringLike conditions on `<host>:aud` and
  `<host>:sub`, and an unexpired `exp`. Anything else in a trust condition denies (fail closed).

The server runs in a child process: moto keeps its state and its enforcement switch in process-wide
globals, which an in-process server would share with any test that uses `mock_aws` (that resets
every backend). The child exits when its stdin closes, so it never outlives the test session.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
_ROOT = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # tests print fixtures on failure; keep secrets out of the log
        return f"Credentials(access_key_id={self.access_key_id!r}, ...)"

    def boto_kwargs(self) -> dict[str, str]:
        kwargs = {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }
        if self.session_token:
            kwargs["aws_session_token"] = self.session_token
        return kwargs


@dataclass(frozen=True)
class Principal:
    name: str
    arn: str
    credentials: Credentials


def unique(prefix: str) -> str:
    """A name no other test in the session uses (the server is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def web_identity_token(
    issuer: str, audience: str, subject: str, expires_in_s: int = 600, **claims: Any
) -> str:
    """An unsigned JWT with these claims: enough for this server, which reads but never verifies."""

    def encode(part: Mapping[str, Any]) -> str:
        raw = json.dumps(part, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    body = {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + expires_in_s}
    body.update(claims)
    return f"{encode({'alg': 'none', 'typ': 'JWT'})}.{encode(body)}.unsigned"


class MotoServer:
    """A running moto server with IAM enforcement on, and helpers to set up principals in it."""

    def __init__(self, endpoint_url: str, admin: Credentials) -> None:
        self.endpoint_url = endpoint_url
        self.region = REGION
        self.account_id = ACCOUNT_ID
        self.admin = admin
        # Building a client costs ~0.2 s of model loading; one session and a cache keep a
        # suite of many small tests fast. Clients are thread-safe; the session is used here only.
        self._session = boto3.session.Session(region_name=REGION)
        self._clients: dict[tuple[str, Credentials], Any] = {}

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        """A boto3 client for `service` acting as `credentials` (default: the admin)."""
        creds = credentials or self.admin
        if (service, creds) not in self._clients:
            self._clients[(service, creds)] = self._session.client(
                service, endpoint_url=self.endpoint_url, **creds.boto_kwargs()
            )
        return self._clients[(service, creds)]

    def create_principal(
        self, policy_document: Mapping[str, Any], name: str | None = None, path: str = "/"
    ) -> Principal:
        """An IAM user whose only permissions are `policy_document` (inline), with an access key."""
        iam = self.client("iam")
        name = name or unique("principal")
        arn = iam.create_user(UserName=name, Path=path)["User"]["Arn"]
        iam.put_user_policy(
            UserName=name, PolicyName="policy", PolicyDocument=json.dumps(policy_document)
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Principal(name, arn, Credentials(key["AccessKeyId"], key["SecretAccessKey"]))

    def ensure_oidc_provider(self, host: str, audience: str) -> str:
        """The ARN of the OIDC provider for `host` (https://host), created on first use."""
        arn = f"arn:aws:iam::{self.account_id}:oidc-provider/{host}"
        iam = self.client("iam")
        if arn not in [
            p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        ]:
            iam.create_open_id_connect_provider(
                Url=f"https://{host}", ClientIDList=[audience], ThumbprintList=["0" * 40]
            )
        return arn

    def create_role(
        self,
        trust_document: Mapping[str, Any],
        policy_document: Mapping[str, Any],
        name: str | None = None,
        path: str = "/",
    ) -> str:
        """A role with this trust policy and `policy_document` as its only (inline) permissions."""
        iam = self.client("iam")
        name = name or unique("role")
        arn = iam.create_role(
            RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust_document)
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=name, PolicyName="policy", PolicyDocument=json.dumps(policy_document)
        )
        return arn

    def assume_role_with_web_identity(self, role_arn: str, token: str) -> Credentials:
        from botocore import UNSIGNED
        from botocore.config import Config

        sts = self._session.client(
            "sts", endpoint_url=self.endpoint_url, config=Config(signature_version=UNSIGNED)
        )
        creds = sts.assume_role_with_web_identity(
            RoleArn=role_arn, RoleSessionName="test-session", WebIdentityToken=token
        )["Credentials"]
        return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

    def create_bucket(self, name: str | None = None) -> str:
        name = name or unique("bucket")
        self.client("s3").create_bucket(Bucket=name)
        return name

    def snapshot(self, bucket: str) -> dict[str, str]:
        """Every key in `bucket` with its ETag: equal snapshots mean nothing was written."""
        s3 = self.client("s3")
        objects: dict[str, str] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                objects[entry["Key"]] = entry["ETag"]
        return objects


def _child_environment() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "INITIAL_NO_AUTH", "MOTO_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.aws_fixtures"],
            cwd=_ROOT,
            env=_child_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], _START_TIMEOUT_S)
            line = process.stdout.readline() if ready else b""
            if not line:
                process.kill()
                raise RuntimeError(
                    f"moto server did not start within {_START_TIMEOUT_S}s; see {log_path}:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            started = json.loads(line)
            yield MotoServer(
                started["endpoint_url"],
                Credentials(started["access_key_id"], started["secret_access_key"]),
            )
        finally:
            if process.stdin:
                process.stdin.close()  # the child's signal to stop
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# The child process.


def _claims(token: str) -> dict[str, Any]:
    try:
        body = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return {}


def _condition_holds(operator: str, expected: Any, actual: Any) -> bool:
    from fnmatch import fnmatchcase

    wanted = expected if isinstance(expected, list) else [expected]
    values = actual if isinstance(actual, list) else [actual]
    if any(not isinstance(v, str) for v in values) or not values:
        return False
    if operator == "StringEquals":
        return any(v in wanted for v in values)
    if operator == "StringLike":
        # IAM's StringLike knows only '*' and '?'; escape fnmatch's '[' so it stays literal.
        patterns = [w.replace("[", "[[]") for w in wanted]
        return any(fnmatchcase(v, p) for v in values for p in patterns)
    return False  # an operator this fake does not model must not silently allow


def _trust_allows(
    trust: Mapping[str, Any], provider_arn: str, host: str, claims: Mapping[str, Any]
) -> bool:
    statements = trust.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        federated = statement.get("Principal", {}).get("Federated")
        if statement.get("Effect") != "Allow" or "sts:AssumeRoleWithWebIdentity" not in actions:
            continue
        if federated != provider_arn:
            continue
        ok = True
        for operator, conditions in statement.get("Condition", {}).items():
            for key, expected in conditions.items():
                claim_host, _, claim = key.partition(":")
                if claim_host != host or claim not in ("aud", "sub"):
                    ok = False
                elif not _condition_holds(operator, expected, claims.get(claim)):
                    ok = False
        if ok:
            return True
    return False


def _install_web_identity_check() -> None:
    """Serve AssumeRoleWithWebIdentity as AWS does: unsigned, authorised by the token's claims."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import AccessDeniedError
    from moto.iam.models import iam_backends

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        is_web_identity = self._get_action() == "AssumeRoleWithWebIdentity"
        if not is_web_identity or "Authorization" in self.headers:
            return original(self, iam_request_cls, resource)
        role_arn = self._get_param("RoleArn")
        claims = _claims(self._get_param("WebIdentityToken") or "")
        issuer = str(claims.get("iss", ""))
        host = issuer.removeprefix("https://")
        provider_arn = f"arn:aws:iam::{self.current_account}:oidc-provider/{host}"
        backend = iam_backends[self.current_account]["aws"]
        denied = AccessDeniedError(
            user_arn=f"web-identity {claims.get('sub')!r}", action="sts:AssumeRoleWithWebIdentity"
        )
        try:
            provider = backend.get_open_id_connect_provider(provider_arn)
            role = backend.get_role_by_arn(role_arn)
        except Exception:
            raise denied from None
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not any(a in provider.client_id_list for a in audiences):
            raise denied
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            raise denied
        if not _trust_allows(
            json.loads(role.assume_role_policy_document), provider_arn, host, claims
        ):
            raise denied

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


def _serve() -> None:
    import requests
    from moto.server import ThreadedMotoServer

    _install_web_identity_check()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    # Enforcement starts off, so the admin can be created with throwaway credentials; from
    # then on every call must be signed by a known principal and be allowed by its policies.
    bootstrap = boto3.session.Session(
        aws_access_key_id=uuid.uuid4().hex,
        aws_secret_access_key=uuid.uuid4().hex,
        region_name=REGION,
    ).client("iam", endpoint_url=endpoint)
    bootstrap.create_user(UserName="admin")
    bootstrap.put_user_policy(
        UserName="admin",
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = bootstrap.create_access_key(UserName="admin")["AccessKey"]
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()

    sys.stdout.write(
        json.dumps(
            {
                "endpoint_url": endpoint,
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
            }
        )
        + "\n"
    )
    sys.stdout.flush()
    sys.stdin.read()  # returns when the parent closes our stdin, or dies
    server.stop()


if __name__ == "__main__":
    _serve()
