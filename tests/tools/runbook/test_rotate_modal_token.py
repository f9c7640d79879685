"""`rotate modal-token`, the fallback deploy token (`rentagpu:modalTokenId`, adopted by
`ModalCiToken`), against the fake Modal server, checked with the real `modal` SDK: the old and new
tokens overlap, the old one ends rejected, a failure midway leaves the old one working, and a stack
that mints its deploy token is sent to `rotate ci-tokens`."""

from __future__ import annotations

import json

from grpclib import Status

from infra.core.config import RawValue
from tests.fakes.modal_fixtures import CI_SERVICE_USER, FakeModal
from tests.tools.runbook.conftest import SECRETS_PLANTED
from tests.tools.runbook.support import (
    InProcessStack,
    assert_never_shown,
    modal_accepts,
    modal_reach,
    run_cli,
)

PREVIOUS_ID = "rentagpu-rotation:previousModalTokenId"


def config_token(stack: InProcessStack) -> tuple[str, str]:
    return (
        stack.config["rentagpu:modalTokenId"].value,
        stack.config["rentagpu:modalTokenSecret"].value,
    )


def roles(stack: InProcessStack) -> dict[str, str]:
    return json.loads(stack.config["rentagpu:modalServiceUserRoles"].value)


def test_a_created_service_user_takes_over_while_the_old_token_works_until_revoked(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], ci_token: tuple[str, str]
) -> None:
    prod = stacks["prod"]  # restricted: a new service user reaches it only through its role
    prod.up()
    assert prod.github_secret("MODAL_TOKEN_ID") == ci_token[0]

    code, first = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--create-service-user", "rentagpu-ci-2"],
        stacks,
    )
    assert code == 0, first
    new = config_token(prod)
    assert new != ci_token

    # The moment between the update and revocation: GitHub holds the new token, both work.
    assert prod.github_secret("MODAL_TOKEN_ID") == new[0]
    assert prod.github_secret("MODAL_TOKEN_SECRET") == new[1]
    assert modal_reach(new, "prod") == "ok"
    assert modal_reach(ci_token, "prod") == "ok"
    assert roles(prod) == {"rentagpu-ci-2": "contributor"}
    assert modal_env.state.snapshot()["environments"]["prod"]["roles"] == {
        f"service_user:{CI_SERVICE_USER}": "contributor",
        "service_user:rentagpu-ci-2": "contributor",
        "service_user:rentagpu-prod-ci-read-1": "viewer",  # the read token is minted: untouched
    }
    created = modal_env.state.principal_named("rentagpu-ci-2", "service_user")
    assert created is not None and created.scoped
    assert "NOT revoked yet" in first and "--resume --revoke-old" in first
    assert prod.config[PREVIOUS_ID] == RawValue(ci_token[0], secret=True)

    code, second = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--resume", "--revoke-old"], stacks
    )
    assert code == 0, second
    assert not modal_accepts(ci_token)
    assert modal_reach(new, "prod") == "ok"
    assert modal_env.state.principal_named(CI_SERVICE_USER, "service_user") is None
    assert PREVIOUS_ID not in prod.config
    prod.up()  # the config no longer names the deleted service user: later updates still work

    assert_never_shown(first + second, [*ci_token, *new, *SECRETS_PLANTED])


def test_one_run_with_revoke_old_overlaps_at_the_moment_between_up_and_revocation(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], dev_token: tuple[str, str]
) -> None:
    dev = stacks["dev"]
    dev.up()
    modal_env.state.add_service_user("rentagpu-ci-next")
    new = modal_env.server.add_token("rentagpu-ci-next", kind="service_user")
    seen: dict[str, bool] = {}

    def between() -> None:
        seen["old"] = modal_accepts(dev_token)
        seen["new"] = modal_reach(new, "dev") == "ok"
        seen["github has new"] = dev.github_secret("MODAL_TOKEN_ID") == new[0]

    dev.after_up = between
    # What `modal workspace service-users create NAME --json` prints, piped in.
    piped = json.dumps({"token_id": new[0], "token_secret": new[1], "expires_at": None})
    code, output = run_cli(
        ["rotate", "modal-token", "--stack", "dev", "--new-token-from", "stdin", "--revoke-old"],
        stacks,
        stdin=piped,
    )
    assert code == 0, output
    assert seen == {"old": True, "new": True, "github has new": True}
    assert not modal_accepts(dev_token)
    assert modal_accepts(new)
    assert config_token(dev) == new
    assert roles(dev) == {"rentagpu-ci-next": "contributor"}
    assert_never_shown(output, [*dev_token, *new, *SECRETS_PLANTED])


def test_a_member_token_in_config_is_replaced_and_only_that_token_is_deleted(
    modal_env: FakeModal, stacks: dict[str, InProcessStack]
) -> None:
    # A stack from before the program refused personal tokens: `pulumi up` refuses it now, so
    # the rotation is the way out, and revoking deletes just that member's token.
    modal_env.state.add_user("alice")
    old = modal_env.server.add_token("alice", kind="user")
    dev = stacks["dev"]
    dev.set_config("rentagpu:modalTokenId", old[0], secret=True)
    dev.set_config("rentagpu:modalTokenSecret", old[1], secret=True)
    modal_env.state.add_service_user("rentagpu-ci-dev-2")
    new = modal_env.server.add_token("rentagpu-ci-dev-2", kind="service_user")
    environ = {"RENTAGPU_NEW_MODAL_TOKEN_ID": new[0], "RENTAGPU_NEW_MODAL_TOKEN_SECRET": new[1]}
    code, output = run_cli(
        ["rotate", "modal-token", "--stack", "dev", "--new-token-from", "env", "--revoke-old"],
        stacks,
        environ=environ,
    )
    assert code == 0, output
    assert "TokenDelete" in modal_env.rpc_names()
    assert "ServiceUserDelete" not in modal_env.rpc_names()
    assert not modal_accepts(old) and modal_accepts(new)
    assert dev.github_secret("MODAL_TOKEN_ID") == new[0]
    assert_never_shown(output, [*old, *new])


def test_a_person_s_token_is_refused_as_the_new_token_before_anything_changes(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], dev_token: tuple[str, str]
) -> None:
    modal_env.state.add_user("bob")
    personal = modal_env.server.add_token("bob", kind="user")
    dev = stacks["dev"]
    before = dict(dev.config)
    code, output = run_cli(
        ["rotate", "modal-token", "--stack", "dev", "--new-token-from", "stdin"],
        stacks,
        stdin=f"{personal[0]}\n{personal[1]}\n",
    )
    assert code == 2
    assert "personal token of member 'bob'" in output and "nothing changed" in output
    assert dev.config == before and dev.ups == 0
    assert_never_shown(output, [*personal, *dev_token])


def test_a_service_user_with_a_role_in_another_environment_is_refused(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], dev_token: tuple[str, str]
) -> None:
    stacks["prod"].up()  # prod's environment exists, and rentagpu-ci is its contributor
    ci = modal_env.server.add_token("rentagpu-ci", kind="service_user")
    dev = stacks["dev"]
    before = dict(dev.config)
    code, output = run_cli(
        ["rotate", "modal-token", "--stack", "dev", "--new-token-from", "stdin"],
        stacks,
        stdin=f"{ci[0]}\n{ci[1]}\n",
    )
    assert code == 2
    assert "'rentagpu-ci' also holds contributor in 'prod'" in output
    assert dev.config == before and dev.ups == 0
    assert_never_shown(output, [*ci, *dev_token])


def test_a_failed_up_leaves_the_old_token_working_and_resume_finishes(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], ci_token: tuple[str, str]
) -> None:
    prod = stacks["prod"]
    prod.up()
    # Granting the new service user its role fails, in the middle of `pulumi up`.
    modal_env.inject("EnvironmentRoleSet", Status.PERMISSION_DENIED, times=1)
    code, output = run_cli(
        [
            "rotate", "modal-token", "--stack", "prod",
            "--create-service-user", "rentagpu-ci-3", "--revoke-old",
        ],
        stacks,
    )  # fmt: skip
    assert code == 2
    assert "old token" in output and "still works" in output
    assert "rotate modal-token --stack prod --resume" in output
    assert modal_reach(ci_token, "prod") == "ok"  # CI still deploys with the old token
    assert prod.github_secret("MODAL_TOKEN_ID") == ci_token[0]
    assert prod.config[PREVIOUS_ID].value == ci_token[0]
    new = config_token(prod)

    code, resumed = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--resume", "--revoke-old"], stacks
    )
    assert code == 0, resumed
    assert prod.github_secret("MODAL_TOKEN_ID") == new[0]
    assert modal_reach(new, "prod") == "ok"
    assert not modal_accepts(ci_token)
    assert_never_shown(output + resumed, [*ci_token, *new, *SECRETS_PLANTED])


def test_revocation_is_refused_while_another_stack_still_uses_the_old_token(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], ci_token: tuple[str, str]
) -> None:
    prod = stacks["prod"]
    stacks["dev"].set_config("rentagpu:modalTokenId", ci_token[0], secret=True)  # shared
    stacks["dev"].set_config("rentagpu:modalTokenSecret", ci_token[1], secret=True)
    prod.up()
    code, output = run_cli(
        [
            "rotate", "modal-token", "--stack", "prod",
            "--create-service-user", "rentagpu-ci-prod", "--revoke-old",
        ],
        stacks,
    )  # fmt: skip
    assert code == 2
    assert "stack 'dev' config key rentagpu:modalTokenId" in output
    assert modal_accepts(ci_token)
    assert modal_reach(config_token(prod), "prod") == "ok"
    assert PREVIOUS_ID in prod.config  # so the rotation can be finished once dev has moved on
    assert_never_shown(output, [*ci_token, *SECRETS_PLANTED])


def test_a_token_modal_rejects_changes_nothing(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], dev_token: tuple[str, str]
) -> None:
    dev = stacks["dev"]
    before = dict(dev.config)
    bogus = ("ak-" + "1" * 24, "as-" + "2" * 24)
    code, output = run_cli(
        ["rotate", "modal-token", "--stack", "dev", "--new-token-from", "stdin"],
        stacks,
        stdin=f"{bogus[0]}\n{bogus[1]}\n",
    )
    assert code == 2
    assert "Modal rejects the new token" in output and "nothing changed" in output
    assert dev.config == before and dev.ups == 0
    assert_never_shown(output, [*bogus, *dev_token])


def test_a_second_rotation_waits_for_the_first_to_finish(
    modal_env: FakeModal, stacks: dict[str, InProcessStack], ci_token: tuple[str, str]
) -> None:
    dev = stacks["dev"]
    dev.up()
    code, _ = run_cli(
        ["rotate", "modal-token", "--stack", "dev", "--create-service-user", "ci-a"], stacks
    )
    assert code == 0
    code, output = run_cli(
        ["rotate", "modal-token", "--stack", "dev", "--create-service-user", "ci-b"], stacks
    )
    assert code == 2 and "already in progress" in output and "--resume --revoke-old" in output
    assert modal_env.state.principal_named("ci-b", "service_user") is None


def test_a_stack_that_mints_its_deploy_token_is_sent_to_rotate_ci_tokens(
    modal_env: FakeModal,
) -> None:
    from tests.stacks import raw_config

    stacks = {stack: InProcessStack(stack, raw_config(stack)) for stack in ("dev", "prod")}
    code, output = run_cli(
        ["rotate", "modal-token", "--stack", "prod", "--create-service-user", "x"], stacks
    )
    assert code == 2
    assert "stack 'prod' mints CI's deploy token" in output
    assert "python -m infra rotate ci-tokens --stack prod" in output
    assert modal_env.state.principal_named("x", "service_user") is None
    assert stacks["prod"].ups == 0
