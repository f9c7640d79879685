"""CI's Modal tokens as GitHub secrets: sealed for the place they live, never a plaintext input."""

from __future__ import annotations

import pulumi
import pytest

from infra.core import names
from infra.core import resource_types as types
from infra.stages.github import ci_secrets
from infra.tools.offline import SEALED_AT_UP, render, stable_id
from tests.stacks import FALLBACK_TOKEN, PLANTED, stack_config
from tests.stages.github.support import github_secret

WHERE = {
    # (stack, purpose): (where GitHub keeps it, its secret names)
    ("dev", "deploy"): ("dev", ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")),
    ("dev", "read"): (
        "repository",
        ("RENTAGPU_DEV_MODAL_READ_TOKEN_ID", "RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET"),
    ),
    ("prod", "deploy"): ("prod", ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")),
    ("prod", "read"): ("prod-readonly", ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET")),
}


@pytest.mark.parametrize(("stack", "purpose"), sorted(WHERE))
def test_each_token_is_sealed_with_the_key_of_the_place_it_lives(renderings, stack, purpose):
    location, secret_names = WHERE[(stack, purpose)]
    rendering = renderings[stack]
    token = rendering.one(types.MODAL_CI_TOKEN, f"{stack}-ci-{purpose}-token-1")
    # minted in the stack's environment, in its one role, sealed for that place's key
    assert token.inputs["environment_name"] == stack
    assert token.inputs["role"] == names.CI_TOKEN_ROLES[purpose]
    assert token.inputs["service_user_name"] == f"rentagpu-{stack}-ci-{purpose}-1"
    assert token.inputs["key_id"] == stable_id("key", location)
    for secret_name in secret_names:
        secret = github_secret(rendering, location, secret_name)
        # only the ciphertext the token resource produced, and the id of the key it used
        assert secret.raw_inputs["valueEncrypted"] == SEALED_AT_UP
        assert secret.inputs["keyId"] == stable_id("key", location)
        for plain in ("value", "plaintextValue", "encryptedValue"):
            assert plain not in secret.inputs


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nothing_of_a_stack_is_a_ci_secret_of_the_other(renderings, stack) -> None:
    other = "prod" if stack == "dev" else "dev"
    rendering = renderings[stack]
    secrets = rendering.of_type(types.GITHUB_ENVIRONMENT_SECRET)
    assert {s.inputs["environment"] for s in secrets} <= {stack, f"{stack}-readonly"}
    for s in rendering.of_type(types.GITHUB_REPOSITORY_SECRET):
        assert s.inputs["secretName"].startswith(f"RENTAGPU_{stack.upper()}_")
    tokens = rendering.of_type(types.MODAL_CI_TOKEN)
    assert all(other not in t.inputs["service_user_name"] for t in tokens)


def test_the_fallback_deploy_token_is_adopted_and_sealed_never_a_plain_input() -> None:
    rendering = render(stack_config("dev", **FALLBACK_TOKEN))
    token = rendering.one(types.MODAL_CI_TOKEN, "dev-ci-deploy-token-1")
    assert token.inputs["service_user_name"] == ""
    assert {"token_id", "token_secret"} <= set(token.secret_paths)
    assert token.raw_inputs["token_secret"] == PLANTED["rentagpu:modalTokenSecret"]
    read = rendering.one(types.MODAL_CI_TOKEN, "dev-ci-read-token-1")
    assert read.inputs["service_user_name"] == "rentagpu-dev-ci-read-1"  # always minted
    for secret in rendering.of_type(types.GITHUB_ENVIRONMENT_SECRET):
        assert "value" not in secret.inputs
        assert PLANTED["rentagpu:modalTokenSecret"] not in repr(secret.raw_inputs)


def test_a_new_serial_names_new_service_users() -> None:
    rendering = render(stack_config("prod", ciTokenSerial=4))
    users = sorted(t.inputs["service_user_name"] for t in rendering.of_type(types.MODAL_CI_TOKEN))
    assert users == ["rentagpu-prod-ci-deploy-4", "rentagpu-prod-ci-read-4"]
    assert sorted(t.name for t in rendering.of_type(types.MODAL_CI_TOKEN)) == [
        "prod-ci-deploy-token-4",
        "prod-ci-read-token-4",
    ]


def test_every_actions_secret_is_deleted_before_it_is_replaced(monkeypatch) -> None:
    """Create-then-delete of a secret with the same id ends with no secret (pulumi-github #223)."""
    seen: list[pulumi.ResourceOptions] = []
    for attribute in ("ActionsEnvironmentSecret", "ActionsSecret"):
        original = getattr(ci_secrets.github, attribute)

        def recording(*args, _original=original, **kwargs):
            seen.append(kwargs["opts"])
            return _original(*args, **kwargs)

        monkeypatch.setattr(ci_secrets.github, attribute, recording)
    render(stack_config("dev"))
    assert len(seen) == 4
    assert all(opts.delete_before_replace is True for opts in seen)
