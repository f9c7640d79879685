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
from tests.fakes.modal_fixtures import FakeModal
from tests.stacks import raw_config
from tests.tools.runbook.conftest import SECRETS_PLANTED
from tests.tools.runbook.support import InProcessStack, assert_never_shown, run_cli

EXPECTED_PLACES = {
    "modal-token": [
        "rentagpu:modalTokenId and rentagpu:modalTokenSecret in Pulumi.prod.yaml",
        "rentagpu-rotation:previousModalTokenId",
        "environment secrets MODAL_TOKEN_ID and MODAL_TOKEN_SECRET of environment 'prod' in "
        "acme-ml/rentagpu",
        "prod-modal-token-id and prod-modal-token-secret",
        "Pulumi state history",
        "Modal: the token itself",
        "deploy.yml",
        "~/.modal.toml",
        "another stack's config",
        "modal workspace service-users delete",
        "python -m infra rotate modal-token --stack prod --create-service-user",
        "--verify",
    ],
    "modal-read-token": [
        "rentagpu:modalReadTokenId and rentagpu:modalReadTokenSecret",
        # prod's read token lives in the main-only environment prod-readonly (infra/core/names.py)
        "environment secrets MODAL_READ_TOKEN_ID and MODAL_READ_TOKEN_SECRET of environment "
        "'prod-readonly' in acme-ml/rentagpu",
        "prod-readonly-modal-read-token-id",
        "preview.yml, drift.yml",
        "python -m infra rotate modal-read-token --stack prod",
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
    "github-token": [
        "environment secret PULUMI_GITHUB_TOKEN of environment 'prod' in acme-ml/rentagpu",
        "repository secret RENTAGPU_GITHUB_READ_TOKEN",
        "github:token",
        "Pulumi state",
        "deploy.yml",
        "~/.config/gh",
        "gh secret set PULUMI_GITHUB_TOKEN --env prod --repo acme-ml/rentagpu",
        "Revoke",
    ],
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


def test_an_oidc_stack_has_no_access_key_to_list() -> None:
    stack = InProcessStack("dev", raw_config("dev"))
    code, output = run_cli(
        ["incident", "--stack", "dev", "--credential", "aws-key"], {"dev": stack}
    )
    assert code == 0 and "no long-lived key" in output and "Revoke active sessions" in output


def verify(stacks: dict, stack: str, credential: str, stdin: str = "", environ=None):
    return run_cli(
        ["incident", "--stack", stack, "--credential", credential, "--verify"],
        stacks,
        stdin=stdin,
        environ=environ,
    )


def test_verify_names_every_live_place_of_a_modal_token_until_it_is_rotated_and_revoked(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], ci_token: tuple[str, str]
) -> None:
    prod = stacks["prod"]
    prod.up()
    old = f"{ci_token[0]}\n{ci_token[1]}\n"

    code, before = verify(stacks, "prod", "modal-token", old)
    assert code == 1
    for place in (
        "STILL HELD: stack 'prod' config key rentagpu:modalTokenId",
        "STILL HELD: Pulumi state of stack 'prod': github:index/actionsEnvironmentSecret:"
        "ActionsEnvironmentSecret prod-modal-token-id",
        "STILL HELD: Modal: token of service user 'rentagpu-ci' still exists",
        "STILL HELD: Modal: the old token still authenticates as service user 'rentagpu-ci'",
    ):
        assert place in before, before

    code, _ = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--create-service-user", "ci-new"], stacks
    )
    assert code == 0
    code, middle = verify(stacks, "prod", "modal-token", old)
    assert code == 1
    assert "STILL HELD: stack 'prod' config key rentagpu-rotation:previousModalTokenId" in middle
    assert "STILL HELD: Modal: the old token still authenticates" in middle
    assert "config key rentagpu:modalTokenId" not in middle
    assert "prod-modal-token-id" not in middle  # GitHub got the new token

    code, _ = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--resume", "--revoke-old"], stacks
    )
    assert code == 0
    code, after = verify(stacks, "prod", "modal-token", old)
    assert code == 0, after
    assert "ok: Modal rejects the old token" in after and "nothing reachable holds" in after
    new = (
        prod.config["rentagpu:modalTokenId"].value,
        prod.config["rentagpu:modalTokenSecret"].value,
    )
    assert_never_shown(before + middle + after, [*ci_token, *new, *SECRETS_PLANTED])


def test_verify_fails_closed_when_modal_cannot_be_asked(
    modal_env: FakeModal,
    stacks: dict[str, InProcessStack],
    ci_token: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    revoked = modal_env.server.add_token("rentagpu-ci", kind="service_user")
    modal_env.server.revoke_token(revoked[0])
    modal_env.use(monkeypatch, token=ci_token)  # a CI token cannot list the workspace's users
    code, output = verify(stacks, "prod", "modal-token", revoked[0])
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


class GitHubApi(BaseHTTPRequestHandler):
    live: dict[str, str] = {}  # token -> login

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        login = self.live.get(token) if self.path == "/user" else None
        body = json.dumps({"login": login} if login else {"message": "Bad credentials"}).encode()
        self.send_response(200 if login else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def github_api() -> Iterator[tuple[str, dict[str, str]]]:
    live: dict[str, str] = {}
    handler = type("Api", (GitHubApi,), {"live": live})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", live
    finally:
        server.shutdown()
        server.server_close()


def test_verify_a_github_token_by_asking_github_and_searching_every_stack_config(
    github_api: tuple[str, dict[str, str]],
) -> None:
    url, live = github_api
    token = "github_pat_" + "A1b2" * 10
    live[token] = "deploy-bot"
    # Someone once put it into dev's config as the provider's token.
    dev = InProcessStack("dev", raw_config("dev", **{"github:token": RawValue(token, True)}))
    stacks = {"dev": dev, "prod": InProcessStack("prod", raw_config("prod"))}
    environ = {"GITHUB_API_URL": url}

    code, before = verify(stacks, "prod", "github-token", token + "\n", environ)
    assert code == 1
    assert "STILL HELD: stack 'dev' config key github:token" in before
    assert "STILL HELD: GitHub: the old token still authenticates, works as 'deploy-bot'" in before

    del live[token]  # revoked on GitHub
    dev.remove_config("github:token")
    code, after = verify(stacks, "prod", "github-token", token + "\n", environ)
    assert code == 0, after
    assert "ok: GitHub rejects the old token (401)" in after
    assert_never_shown(before + after, [token, *SECRETS_PLANTED])
