"""The policy access-key-rotation (infra/policies/key_rotation.py), driven through the pack with
hand-built validation args (see tests/policies/support.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pulumi_policy import EnforcementLevel

from infra.core import resource_types as T
from infra.policies.model import PolicyContext
from infra.policy_pack.pack import context_from_config, context_from_environment
from tests.policies.support import (
    UNKNOWN_STRING,
    check_stack,
    context,
    pack_policies,
    secret,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def access_key(created: str | None, name: str = "prod-runtime-key-1") -> tuple:
    props = {"user": "rentagpu-prod-runtime", "secret": secret("s3cr3t"), "status": "Active"}
    if created is not None:
        props["createDate"] = created
    return (T.AWS_ACCESS_KEY, name, props)


class TestAccessKeyRotation:
    policy = "access-key-rotation"

    def test_it_is_advisory(self) -> None:
        assert pack_policies(context())[self.policy].enforcement_level is EnforcementLevel.ADVISORY

    @pytest.mark.parametrize("created", ["2026-10-01T00:00:00Z", None, UNKNOWN_STRING])
    def test_young_or_not_yet_created_keys_pass(self, created) -> None:
        assert check_stack(self.policy, [access_key(created)], context(now=NOW)) == []

    def test_a_key_older_than_the_default_90_days_is_reported(self) -> None:
        ((at, message),) = check_stack(
            self.policy, [access_key("2026-08-01T09:30:00Z")], context(now=NOW)
        )
        assert at.endswith("::prod-runtime-key-1")
        assert "2026-08-01, 119 days ago" in message and "rentagpu:accessKeySerial" in message
        assert "s3cr3t" not in message

    def test_the_configured_age_from_stack_config_applies(self) -> None:
        config = {"rentagpu:environment": "prod", "rentagpu:accessKeyMaxAgeDays": "30"}
        ctx = PolicyContext(**{**context_from_config(config, "prod").__dict__, "now": NOW})
        assert ctx.access_key_max_age_days == 30
        ((_, message),) = check_stack(self.policy, [access_key("2026-10-01T00:00:00Z")], ctx)
        assert "(30)" in message


def test_the_pack_reads_its_context_from_the_engine_environment() -> None:
    environ = {
        "PULUMI_STACK": "prod",
        "PULUMI_CONFIG": json.dumps(
            {
                "rentagpu:githubOwner": "acme-ml",
                "rentagpu:githubRepository": "rentagpu",
                "rentagpu:accessKeyMaxAgeDays": "45",
            }
        ),
    }
    ctx = context_from_environment(environ)
    assert (ctx.environment, ctx.access_key_max_age_days) == ("prod", 45)
    broken = {"PULUMI_STACK": "dev", "PULUMI_CONFIG": '{"rentagpu:accessKeyMaxAgeDays": "soon"}'}
    assert context_from_environment(broken).access_key_max_age_days == 90
    assert context_from_environment(broken).environment == "dev"
