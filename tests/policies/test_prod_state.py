"""The policy prod-state-holds-no-credential on rendered stacks: prod's read credentials decrypt
prod's config and state without a reviewer, so neither may hold what deploys or writes."""

from __future__ import annotations

import pytest

from infra.tools.offline import render
from infra.tools.plan import evaluate
from tests.policies.test_rendered_stacks import context
from tests.stacks import FALLBACK_TOKEN, stack_config

POLICY = "prod-state-holds-no-credential"


def found(cfg) -> list:
    return [v for v in evaluate(render(cfg), context(cfg.stack)) if v.policy == POLICY]


def test_minted_tokens_and_oidc_keep_prod_s_state_clean() -> None:
    assert found(stack_config("prod")) == []


def test_a_config_supplied_deploy_token_in_prod_is_refused_naming_the_keys() -> None:
    (violation,) = found(stack_config("prod", **FALLBACK_TOKEN))
    assert violation.level == "mandatory" and violation.resource == "prod-ci-deploy-token-1"
    assert "rentagpu:modalTokenId" in violation.message
    assert "let `pulumi up` mint the token" in violation.message


def test_an_access_key_in_prod_is_refused() -> None:
    (violation,) = found(stack_config("prod", awsAuth="access-key"))
    assert "rentagpu:awsAuth oidc" in violation.message


@pytest.mark.parametrize("overrides", [FALLBACK_TOKEN, {"awsAuth": "access-key"}])
def test_dev_may_use_the_fallback_and_access_keys(overrides) -> None:
    """dev's readers reach dev only: what its state holds reaches nothing of prod."""
    assert found(stack_config("dev", **overrides)) == []
