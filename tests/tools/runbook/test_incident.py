"""`incident`: the listing names every place each credential lives, and `--verify` fails, naming
the place, while the old value is still live, and passes once it is rotated and revoked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.core.config import RawValue
from tests.fakes.aws_fixtures import MotoServer
from tests.fakes.engine import InProcessEngine
from tests.fakes.modal_fixtures import FakeModal
from tests.stacks import raw_config
from tests.tools.runbook.conftest import SECRETS_PLANTED
from tests.tools.runbook.support import (
    DEPLOY_TYPE,
    DeployStub,
    InProcessStack,
    assert_never_shown,
    run_cli,
)

EXPECTED_PLACES = {
    "modal-deploy-token": [
        # minted: where deploy.yml reads it, and the one service user that holds it
        "environment secrets MODAL_TOKEN_ID and MODAL_TOKEN_SECRET of environment 'prod' in "
        "acme-ml/rentagpu",
        "the runs of deploy.yml / deploy",
        "service user 'rentagpu-prod-ci-deploy-1' (role contributor in 'prod'",
        "prod-ci-deploy-token-1",
        "prod-modal-token-id and prod-modal-token-secret",
        "modal workspace service-users delete rentagpu-prod-ci-deploy-1",
        "python -m infra rotate ci-tokens --stack prod",
        "--credential modal-deploy-token --verify",
    ],
    "modal-read-token": [
        # prod's read token lives in the main-only environment prod-readonly (infra/core/names.py)
        "environment secrets MODAL_READ_TOKEN_ID and MODAL_READ_TOKEN_SECRET of environment "
        "'prod-readonly' in acme-ml/rentagpu",
        "audit.yml / audit-prod, drift.yml / check-prod",
        "modal workspace service-users delete rentagpu-prod-ci-read-1",
        "prod-readonly-modal-read-token-id",
        "python -m infra rotate ci-tokens --stack prod",
    ],
    "modal-service-user": ["configures no such service user"],
    "modal-admin-token": [
        "~/.modal.toml",
        "modal workspace member-tokens disable",
        "modal token new",
    ],
    "aws-key": [
        "access key of user rentagpu-prod-runtime (path /rentagpu/prod/)",
        "prod-runtime-key-4",
        "secret 'rentagpu-runtime' in environment 'prod', keys AWS_ACCESS_KEY_ID",
        "containers of app 'rentagpu-executor'",
        "prod-modal-runtime-secret",
        "rentagpu:accessKeySerial (4)",
        "aws cloudtrail lookup-events",
        "aws iam update-access-key --user-name rentagpu-prod-runtime",
        "python -m infra rotate aws-key --stack prod",
    ],
    "aws-role": [
        "roles rentagpu-prod-deploy, rentagpu-prod-preview, rentagpu-prod-drift",
        "no long-lived secret",
        "Revoke active sessions",
        "AWSRevokeOlderSessions",
        "Verify: nothing to verify",
    ],
    "aws-admin-credentials": ["~/.aws", "update-access-key", "not verifiable here"],
    "pulumi-token": [
        "write token: environment secret PULUMI_ACCESS_TOKEN of environment 'prod' in "
        "acme-ml/rentagpu",
        "read token: environment secret PULUMI_ACCESS_TOKEN of environment 'prod-readonly'",
        "preview token: repository secret RENTAGPU_PROD_PULUMI_READ_TOKEN",
        "the runs of deploy.yml / deploy",
        "the runs of drift.yml / check-prod, preview.yml / preview-main",
        "the runs of preview.yml / preview-prod",
        "python -m infra rotate pulumi-token --stack prod --scope write",
        "python -m infra rotate pulumi-token --stack prod --scope read",
        "python -m infra rotate pulumi-token --stack prod --scope preview",
        "--credential stack-secrets",
    ],
    "stack-secrets": [
        "the runtime AWS key",
        "python -m infra incident --stack prod --credential aws-key",
        "CI's minted Modal tokens (sealed for GitHub",
        "pulumi stack change-secrets-provider",
    ],
    "github-read-token": [
        "repository secret RENTAGPU_GITHUB_READ_TOKEN in acme-ml/rentagpu",
        "deploy.yml / deploy",
        "drift.yml / check-prod",
        "python -m infra rotate github-read-token --stack prod",
        "Fine-grained tokens",
    ],
    "github-admin-token": [
        "never stored",
        "GITHUB_TOKEN of their `pulumi up`",
        "if a workflow reads PULUMI_GITHUB_TOKEN",
        "~/.config/gh",
        "github:token",
        "Revoke:",
    ],
    "job-token": ["GITHUB_TOKEN of each workflow job", "gh run cancel"],
}


@pytest.mark.parametrize("credential", sorted(EXPECTED_PLACES))
def test_the_listing_names_every_place_and_the_commands(credential: str) -> None:
    config = raw_config("prod", awsAuth="access-key", accessKeySerial=4)
    stack = InProcessStack("prod", config)
    code, output = run_cli(
        ["incident", "--stack", "prod", "--credential", credential], {"prod": stack}
    )
    assert code == 0
    missing = [text for text in EXPECTED_PLACES[credential] if text not in output]
    assert not missing, output
    assert_never_shown(output, SECRETS_PLANTED)


def test_dev_s_listings_name_its_repository_secrets_and_the_jobs_that_read_them() -> None:
    stacks = {"dev": InProcessStack("dev", raw_config("dev"))}
    _, read = run_cli(["incident", "--stack", "dev", "--credential", "modal-read-token"], stacks)
    assert (
        "repository secrets RENTAGPU_DEV_MODAL_READ_TOKEN_ID and "
        "RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET in acme-ml/rentagpu" in read
    )
    assert "audit.yml / audit-dev, drift.yml / check-dev" in read
    _, pulumi = run_cli(["incident", "--stack", "dev", "--credential", "pulumi-token"], stacks)
    assert "write token: environment secret PULUMI_ACCESS_TOKEN of environment 'dev'" in pulumi
    assert "preview token: repository secret RENTAGPU_DEV_PULUMI_READ_TOKEN" in pulumi
    assert "--scope read" not in pulumi  # dev has no read-only environment


def test_the_fallback_deploy_token_is_listed_in_config_and_rotated_with_modal_token(
    stacks: dict[str, InProcessStack],
) -> None:
    code, output = run_cli(
        ["incident", "--stack", "prod", "--credential", "modal-deploy-token"], stacks
    )
    assert code == 0
    for text in (
        "rentagpu:modalTokenId and rentagpu:modalTokenSecret in Pulumi.prod.yaml",
        "rentagpu-rotation:previousModalTokenId",
        "environment secrets MODAL_TOKEN_ID and MODAL_TOKEN_SECRET of environment 'prod'",
        "configured service users: rentagpu-ci",
        "python -m infra rotate modal-token --stack prod --create-service-user",
        "then `python -m infra rotate ci-tokens --stack prod`",
    ):
        assert text in output, output


def test_configured_service_users_are_listed_with_how_to_delete_them() -> None:
    config = raw_config("dev", modalServiceUserRoles={"ml-notebooks": "viewer"})
    stacks = {"dev": InProcessStack("dev", config)}
    _, output = run_cli(
        ["incident", "--stack", "dev", "--credential", "modal-service-user"], stacks
    )
    assert "modalServiceUserRoles: ml-notebooks" in output
    assert "modal workspace service-users delete ml-notebooks" in output


def test_an_oidc_stack_has_no_access_key_to_list() -> None:
    stack = InProcessStack("dev", raw_config("dev"))
    code, output = run_cli(
        ["incident", "--stack", "dev", "--credential", "aws-key"], {"dev": stack}
    )
    assert code == 0 and "no long-lived key" in output and "Revoke active sessions" in output


def test_verify_is_refused_with_the_reason_for_a_credential_without_a_secret() -> None:
    stacks = {"dev": InProcessStack("dev", raw_config("dev"))}
    code, output = run_cli(
        ["incident", "--stack", "dev", "--credential", "aws-role", "--verify"], stacks
    )
    assert code == 2
    assert "--verify does not apply to aws-role: nothing to verify: an OIDC role" in output


def verify(stacks: dict, stack: str, credential: str, stdin: str = "", environ=None):
    return run_cli(
        ["incident", "--stack", stack, "--credential", credential, "--verify"],
        stacks,
        stdin=stdin,
        environ=environ,
    )


def test_verify_names_every_live_place_of_the_fallback_token_until_rotated_and_revoked(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], ci_token: tuple[str, str]
) -> None:
    prod = stacks["prod"]
    prod.up()
    old = f"{ci_token[0]}\n{ci_token[1]}\n"

    code, before = verify(stacks, "prod", "modal-deploy-token", old)
    assert code == 1
    for place in (
        "STILL HELD: stack 'prod' config key rentagpu:modalTokenId",
        # adopted: the token is the resource's (encrypted) input; GitHub got it sealed
        "STILL HELD: Pulumi state of stack 'prod': pulumi-python:dynamic/rentagpu:ModalCiToken "
        "prod-ci-deploy-token-1",
        "STILL HELD: Modal: token of service user 'rentagpu-ci' still exists",
        "STILL HELD: Modal: the old token still authenticates as service user 'rentagpu-ci'",
    ):
        assert place in before, before

    code, _ = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--create-service-user", "ci-new"], stacks
    )
    assert code == 0
    code, middle = verify(stacks, "prod", "modal-deploy-token", old)
    assert code == 1
    assert "STILL HELD: stack 'prod' config key rentagpu-rotation:previousModalTokenId" in middle
    assert "STILL HELD: Modal: the old token still authenticates" in middle
    assert "config key rentagpu:modalTokenId" not in middle
    assert "prod-ci-deploy-token-1" not in middle  # the resource adopted the new token

    code, _ = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--resume", "--revoke-old"], stacks
    )
    assert code == 0
    code, after = verify(stacks, "prod", "modal-deploy-token", old)
    assert code == 0, after
    assert "ok: Modal rejects the old token" in after and "nothing reachable holds" in after
    new = (
        prod.config["rentagpu:modalTokenId"].value,
        prod.config["rentagpu:modalTokenSecret"].value,
    )
    assert_never_shown(before + middle + after, [*ci_token, *new, *SECRETS_PLANTED])


def test_verify_follows_a_minted_token_until_rotate_ci_tokens_deletes_its_service_user(
    modal_env: FakeModal,
) -> None:
    engine = InProcessEngine(handlers={DEPLOY_TYPE: DeployStub()})
    stacks = {"dev": InProcessStack("dev", raw_config("dev"), engine)}
    stacks["prod"] = InProcessStack("prod", raw_config("prod"))
    dev = stacks["dev"]
    dev.up()
    leaked = (dev.github_secret("MODAL_TOKEN_ID"), dev.github_secret("MODAL_TOKEN_SECRET"))
    environ = {
        "RENTAGPU_OLD_CREDENTIAL_ID": leaked[0],
        "RENTAGPU_OLD_CREDENTIAL_SECRET": leaked[1],
    }

    code, before = verify(stacks, "dev", "modal-deploy-token", environ=environ)
    assert code == 1
    for place in (
        # the token's id is an output of the minting resource; its secret is nowhere in state
        "STILL HELD: Pulumi state of stack 'dev': pulumi-python:dynamic/rentagpu:ModalCiToken "
        "dev-ci-deploy-token-1",
        "STILL HELD: Modal: token of service user 'rentagpu-dev-ci-deploy-1' still exists",
        "STILL HELD: Modal: the old token still authenticates as service user "
        "'rentagpu-dev-ci-deploy-1'",
    ):
        assert place in before, before
    assert "config key" not in before

    code, _ = run_cli(["rotate", "ci-tokens", "--stack", "dev"], stacks)
    assert code == 0
    code, after = verify(stacks, "dev", "modal-deploy-token", environ=environ)
    assert code == 0, after
    assert "ok: Modal lists no such token" in after and "ok: Modal rejects the old token" in after
    assert_never_shown(before + after, [*leaked, *SECRETS_PLANTED])


def test_verify_fails_closed_when_modal_cannot_be_asked(
    modal_env: FakeModal,
    stacks: dict[str, InProcessStack],
    ci_token: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    revoked = modal_env.server.add_token("rentagpu-ci", kind="service_user")
    modal_env.server.revoke_token(revoked[0])
    modal_env.use(monkeypatch, token=ci_token)  # a CI token cannot list the workspace's users
    code, output = verify(stacks, "prod", "modal-deploy-token", revoked[0])
    assert code == 1
    assert "NOT CHECKED: Modal token lists" in output
    assert_never_shown(output, [*revoked, *ci_token])


def test_verify_finds_an_aws_key_in_iam_state_and_the_modal_secret_until_rotated(
    key_stack: InProcessStack, aws_operator: MotoServer, modal_env: FakeModal
) -> None:
    stacks = {"dev": key_stack, "prod": InProcessStack("prod", raw_config("prod"))}
    record = key_stack.engine.state["dev-runtime-key-1"]
    environ = {
        "RENTAGPU_OLD_CREDENTIAL_ID": record.id,
        "RENTAGPU_OLD_CREDENTIAL_SECRET": record.outputs["secret"],
    }
    code, before = verify(stacks, "dev", "aws-key", environ=environ)
    assert code == 1
    for place in (
        "STILL HELD: AWS: IAM user rentagpu-dev-runtime still has access key",
        "STILL HELD: Pulumi state of stack 'dev': aws:iam/accessKey:AccessKey dev-runtime-key-1",
        "STILL HELD: Pulumi state of stack 'dev': pulumi-python:dynamic/rentagpu:ModalSecret "
        "dev-modal-runtime-secret (the Modal secret 'rentagpu-runtime' as Pulumi last wrote it)",
        "STILL HELD: AWS: the old key",
    ):
        assert place in before, before

    code, _ = run_cli(["rotate", "aws-key", "--stack", "dev"], stacks)
    assert code == 0
    code, after = verify(stacks, "dev", "aws-key", environ=environ)
    assert code == 0, after
    assert "ok: AWS refuses the old key" in after
    # What the app's containers read now, straight from the (fake) Modal server.
    values = modal_env.state.secret_values("dev", "rentagpu-runtime")
    assert values["AWS_ACCESS_KEY_ID"] != record.id
    assert_never_shown(before + after, [record.id, record.outputs["secret"], *SECRETS_PLANTED])


class TokenApi(BaseHTTPRequestHandler):
    """GitHub's GET /user (`Authorization: Bearer TOKEN`) and Pulumi Cloud's GET /api/user
    (`Authorization: token TOKEN`, pulumi.com/docs REST API basics): 200 with the login for a
    live token, 401 otherwise."""

    live: dict[str, str] = {}  # token -> login

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        header = self.headers.get("Authorization", "")
        scheme = {"/user": "Bearer ", "/api/user": "token "}.get(self.path)
        token = header.removeprefix(scheme) if scheme and header.startswith(scheme) else None
        login = self.live.get(token) if token else None
        field = "githubLogin" if self.path == "/api/user" else "login"
        body = json.dumps({field: login} if login else {"message": "Bad credentials"}).encode()
        self.send_response(200 if login else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_api() -> Iterator[tuple[str, dict[str, str]]]:
    live: dict[str, str] = {}
    handler = type("Api", (TokenApi,), {"live": live})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", live
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("credential", ["github-admin-token", "github-read-token"])
def test_verify_a_github_token_by_asking_github_and_searching_every_stack_config(
    token_api: tuple[str, dict[str, str]], credential: str
) -> None:
    url, live = token_api
    token = "github_pat_" + "A1b2" * 10
    live[token] = "deploy-bot"
    # Someone once put it into dev's config as the provider's token.
    dev = InProcessStack("dev", raw_config("dev", **{"github:token": RawValue(token, True)}))
    stacks = {"dev": dev, "prod": InProcessStack("prod", raw_config("prod"))}
    environ = {"GITHUB_API_URL": url}

    code, before = verify(stacks, "prod", credential, token + "\n", environ)
    assert code == 1
    assert "STILL HELD: stack 'dev' config key github:token" in before
    assert "STILL HELD: GitHub: the old token still authenticates, works as 'deploy-bot'" in before

    del live[token]  # revoked on GitHub
    dev.remove_config("github:token")
    code, after = verify(stacks, "prod", credential, token + "\n", environ)
    assert code == 0, after
    assert "ok: GitHub rejects the old token (401)" in after
    assert_never_shown(before + after, [token, *SECRETS_PLANTED])


def test_verify_a_pulumi_token_by_asking_pulumi_cloud(
    token_api: tuple[str, dict[str, str]],
) -> None:
    url, live = token_api
    token = "pul-" + "0f1e" * 10
    live[token] = "acme-ml"
    stacks = {stack: InProcessStack(stack, raw_config(stack)) for stack in ("dev", "prod")}
    environ = {"PULUMI_BACKEND_URL": url, "RENTAGPU_OLD_CREDENTIAL_ID": token}

    code, before = verify(stacks, "prod", "pulumi-token", environ=environ)
    assert code == 1
    assert "STILL HELD: Pulumi Cloud: the old token still authenticates, works as 'acme-ml'" in (
        before
    )
    del live[token]  # deleted on its Access tokens page
    code, after = verify(stacks, "prod", "pulumi-token", environ=environ)
    assert code == 0, after
    assert "ok: Pulumi Cloud rejects the old token (401)" in after
    code, selfmanaged = verify(
        stacks, "prod", "pulumi-token", environ={**environ, "PULUMI_BACKEND_URL": "s3://state"}
    )
    assert code == 1 and "NOT CHECKED: Pulumi Cloud: unknown: PULUMI_BACKEND_URL is a " in (
        selfmanaged
    )
    assert_never_shown(before + after + selfmanaged, [token, *SECRETS_PLANTED])
