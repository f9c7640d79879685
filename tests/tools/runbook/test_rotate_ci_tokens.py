"""`rotate ci-tokens`: CI's minted Modal tokens replaced by a full `pulumi up` (the in-process
engine, every Modal resource against the fake Modal server), checked with the real `modal` SDK and
by opening what GitHub would hold: new tokens work, old ones are refused, a failed update leaves the
old ones working and `--resume` finishes without a second bump."""

from __future__ import annotations

import pytest
from grpclib import Status

from tests.fakes.engine import InProcessEngine
from tests.fakes.modal_fixtures import FakeModal
from tests.stacks import raw_config
from tests.tools.runbook.conftest import SECRETS_PLANTED, token_config
from tests.tools.runbook.support import (
    DEPLOY_TYPE,
    DeployStub,
    InProcessStack,
    assert_never_shown,
    modal_accepts,
    modal_reach,
    run_cli,
)

SERIAL = "rentagpu:ciTokenSerial"
DEV_READ = ("RENTAGPU_DEV_MODAL_READ_TOKEN_ID", "RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET")


@pytest.fixture
def minting() -> dict[str, InProcessStack]:
    """Both stacks as the example stack files have them: no fallback, CI's tokens minted."""
    return {
        stack: InProcessStack(
            stack, raw_config(stack), InProcessEngine(handlers={DEPLOY_TYPE: DeployStub()})
        )
        for stack in ("dev", "prod")
    }


def held(stack: InProcessStack, names: tuple[str, str]) -> tuple[str, str]:
    """What GitHub holds under the two names, opened as GitHub would."""
    first, second = (stack.github_secret(n) for n in names)
    assert first and second, names
    return first, second


def who(modal_env: FakeModal, token: tuple[str, str]) -> str | None:
    caller = modal_env.server.authenticate(
        {"x-modal-token-id": token[0], "x-modal-token-secret": token[1]}
    )
    return None if caller is None else caller.principal.name


def service_users(modal_env: FakeModal, environment: str) -> dict[str, str]:
    return {
        key.split(":", 1)[1]: role
        for key, role in modal_env.state.snapshot()["environments"][environment]["roles"].items()
    }


def test_a_rotation_replaces_both_tokens_and_gitHub_holds_the_new_ones(
    modal_env: FakeModal, minting: dict[str, InProcessStack]
) -> None:
    dev = minting["dev"]
    dev.up()
    old_deploy = held(dev, ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"))
    old_read = held(dev, DEV_READ)
    assert who(modal_env, old_deploy) == "rentagpu-dev-ci-deploy-1"

    code, output = run_cli(["rotate", "ci-tokens", "--stack", "dev"], minting)

    assert code == 0, output
    assert dev.config[SERIAL].value == "2"
    new_deploy = held(dev, ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"))
    new_read = held(dev, DEV_READ)
    assert who(modal_env, new_deploy) == "rentagpu-dev-ci-deploy-2"
    assert who(modal_env, new_read) == "rentagpu-dev-ci-read-2"
    assert modal_reach(new_deploy, "dev") == "ok"  # what a deploy looks up first
    assert not modal_accepts(old_deploy) and not modal_accepts(old_read)
    assert service_users(modal_env, "dev") == {
        "rentagpu-dev-ci-deploy-2": "contributor",
        "rentagpu-dev-ci-read-2": "viewer",
    }
    for text in (
        "[1/5] Read stack 'dev': ciTokenSerial 1",
        "'rentagpu-dev-ci-deploy-1': contributor in 'dev'; scoped",
        "[3/5] Bump ciTokenSerial 1 -> 2",
        "deleted: rentagpu-dev-ci-deploy-1, rentagpu-dev-ci-read-1",
        "GitHub holds the deploy token in its environment secrets MODAL_TOKEN_ID and "
        "MODAL_TOKEN_SECRET of environment 'dev'",
        "GitHub holds the read token in its repository secrets RENTAGPU_DEV_MODAL_READ_TOKEN_ID "
        "and RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET",
    ):
        assert text in output, output
    assert_never_shown(output, [*old_deploy, *old_read, *new_deploy, *new_read])


def test_a_failed_update_keeps_the_old_tokens_working_and_resume_does_not_bump_again(
    modal_env: FakeModal, minting: dict[str, InProcessStack]
) -> None:
    prod = minting["prod"]
    prod.up()
    old_deploy = held(prod, ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"))
    old_read = held(prod, ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET"))
    # Modal refuses the second new service user, in the middle of `pulumi up`.
    modal_env.inject("ServiceUserCreate", Status.PERMISSION_DENIED, times=1)

    code, output = run_cli(["rotate", "ci-tokens", "--stack", "prod"], minting)

    assert code == 2
    assert "Nothing was deleted: rentagpu-prod-ci-deploy-1, rentagpu-prod-ci-read-1 still" in output
    assert "python -m infra rotate ci-tokens --stack prod --resume" in output
    assert prod.config[SERIAL].value == "2"
    assert modal_reach(old_deploy, "prod") == "ok"  # CI still deploys with what GitHub holds
    assert modal_accepts(old_read)

    code, resumed = run_cli(["rotate", "ci-tokens", "--stack", "prod", "--resume"], minting)

    assert code == 0, resumed
    assert "[3/5] Resume: ciTokenSerial stays 2" in resumed
    assert prod.config[SERIAL].value == "2"
    new_deploy = held(prod, ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"))
    assert who(modal_env, new_deploy) == "rentagpu-prod-ci-deploy-2"
    assert modal_reach(new_deploy, "prod") == "ok"
    assert not modal_accepts(old_deploy) and not modal_accepts(old_read)
    assert_never_shown(output + resumed, [*old_deploy, *old_read, *new_deploy])


def test_a_new_service_user_with_a_second_role_fails_the_check_naming_it(
    modal_env: FakeModal, minting: dict[str, InProcessStack]
) -> None:
    dev = minting["dev"]
    dev.up()
    modal_env.state.add_environment("staging")

    def someone_grants_more() -> None:
        modal_env.state.set_role("staging", "rentagpu-dev-ci-deploy-2", "contributor")

    dev.after_up = someone_grants_more
    code, output = run_cli(["rotate", "ci-tokens", "--stack", "dev"], minting)
    assert code == 2
    assert "the update finished but the checks failed" in output
    assert "'rentagpu-dev-ci-deploy-2': contributor in 'dev', contributor in 'staging'" in output
    assert "expected exactly contributor in 'dev'" in output
    assert "--resume" in output


def test_the_fallback_deploy_token_is_left_to_rotate_modal_token(
    modal_env: FakeModal, ci_token: tuple[str, str]
) -> None:
    prod = InProcessStack(
        "prod",
        raw_config("prod", **token_config(ci_token)),
        InProcessEngine(handlers={DEPLOY_TYPE: DeployStub()}),
    )
    stacks = {"prod": prod, "dev": InProcessStack("dev", raw_config("dev"))}
    prod.up()
    old_read = held(prod, ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET"))

    code, output = run_cli(["rotate", "ci-tokens", "--stack", "prod"], stacks)

    assert code == 0, output
    assert "deploy token: adopted from stack config (rentagpu:modalTokenId" in output
    assert "python -m infra rotate modal-token --stack prod" in output
    assert held(prod, ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")) == ci_token  # untouched
    assert modal_reach(ci_token, "prod") == "ok"
    new_read = held(prod, ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET"))
    assert who(modal_env, new_read) == "rentagpu-prod-ci-read-2"
    assert not modal_accepts(old_read)
    assert "rentagpu-prod-ci-deploy" not in str(service_users(modal_env, "prod"))
    assert_never_shown(output, [*ci_token, *old_read, *new_read, *SECRETS_PLANTED])
