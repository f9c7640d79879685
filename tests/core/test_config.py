"""Stack config: every mistake is one clear message naming its key, reported before anything."""

from __future__ import annotations

import pickle

import pulumi
import pytest

from infra import program
from infra.core.config import RawValue, SecretStr, parse_config
from infra.core.errors import ConfigError
from infra.tools.offline import RecordingMocks
from tests.stacks import FALLBACK_TOKEN, PLANTED, raw_config, stack_config


def test_valid_stacks_parse_into_typed_frozen_objects() -> None:
    dev, prod = stack_config("dev"), stack_config("prod")
    assert dev.environment == "dev" and not dev.is_prod and not dev.modal.restricted
    assert prod.is_prod and prod.modal.restricted
    assert prod.github.reviewers == ("alice", "bob")
    assert prod.github.reviewer_teams == ("ml-platform",)
    assert dev.github.deployment_branches == ("main",)
    assert dev.modal.app_name == "rentagpu-executor"
    assert dev.modal.service_user_roles == ()
    assert stack_config(
        "dev", modalServiceUserRoles={"ml-bot": "viewer"}
    ).modal.service_user_roles == (("ml-bot", "viewer"),)
    assert dev.aws.auth_mode == "oidc" and dev.aws.region == "eu-west-1"
    assert (dev.modal.monthly_budget_dollars, prod.modal.monthly_budget_dollars) == (None, 500)
    assert stack_config("dev", monthlyBudgetDollars="").modal.monthly_budget_dollars is None
    # CI's tokens are minted unless the fallback is set; serial 1, 90 days by default.
    assert (dev.modal.token_id, dev.modal.token_secret) == (None, None)
    assert (dev.modal.ci_token_serial, dev.modal.ci_token_lifetime_days) == (1, 90)
    fallback = stack_config("dev", **FALLBACK_TOKEN).modal
    assert fallback.token_id is not None
    assert fallback.token_id.reveal() == PLANTED["rentagpu:modalTokenId"]
    with pytest.raises(AttributeError):
        dev.environment = "prod"  # type: ignore[misc]


def test_config_objects_never_show_their_secrets() -> None:
    cfg = stack_config("prod", **FALLBACK_TOKEN)
    for text in (repr(cfg), str(cfg), repr(cfg.modal), f"{cfg.modal.token_secret}"):
        for value in PLANTED.values():
            assert value not in text
    with pytest.raises(TypeError):
        pickle.dumps(cfg.modal.token_secret)
    assert SecretStr("x") == SecretStr("x") and SecretStr("x") != SecretStr("y")


MISTAKES = [
    # (stack, overrides, key named in the message, words the message must contain)
    (
        "dev",
        {"modalTokenId": FALLBACK_TOKEN["modalTokenId"]},
        "rentagpu:modalTokenSecret",
        "set both, or neither",
    ),
    (
        "dev",
        {**FALLBACK_TOKEN, "modalTokenSecret": RawValue("plain-value-123")},
        "rentagpu:modalTokenSecret",
        "plain text",
    ),
    ("prod", {"requiredApprovals": 0}, "rentagpu:requiredApprovals", "1-6"),
    ("dev", {"ciTokenSerial": 0}, "rentagpu:ciTokenSerial", "1-1000000"),
    ("dev", {"ciTokenLifetimeDays": 3}, "rentagpu:ciTokenLifetimeDays", "7-365"),
    (
        "prod",
        {"reviewers": None, "reviewerTeams": None},
        "rentagpu:reviewers",
        "at least one required reviewer",
    ),
    (
        "prod",
        {"reviewers": ["alice"], "reviewerTeams": None},
        "rentagpu:reviewers",
        "could never approve",
    ),
    (
        "prod",
        {"reviewers": ["a", "b", "c", "d", "e"], "reviewerTeams": ["t1", "t2"]},
        "rentagpu:reviewers",
        "at most 6",
    ),
    ("dev", {"environment": "staging"}, "rentagpu:environment", "one of: dev, prod"),
    (
        "prod",
        {"monthlyBudgetDollars": None},
        "rentagpu:monthlyBudgetDollars",
        "prod needs a spend cap",
    ),
    ("dev", {"monthlyBudgetDollars": 0}, "rentagpu:monthlyBudgetDollars", "whole number 1-1000000"),
    ("prod", {"monthlyBudgetDollars": ""}, "rentagpu:monthlyBudgetDollars", "needs a spend cap"),
    ("dev", {"monthlyBudgetDollars": "12.5"}, "rentagpu:monthlyBudgetDollars", "'12.5' is not"),
    (
        "prod",
        {"monthlyBudgetDollars": RawValue("500", secret=True)},
        "rentagpu:monthlyBudgetDollars",
        "is stored as a secret",
    ),
    (
        "dev",
        {"environment": "prod"},
        "rentagpu:environment",
        "name each stack after its environment",
    ),
    ("dev", {"modalAppName": "my app!"}, "rentagpu:modalAppName", "at most 64 letters"),
    ("dev", {"modalAppName": "a" * 65}, "rentagpu:modalAppName", "OIDC"),
    ("dev", {"bucket": "Bad_Bucket"}, "rentagpu:bucket", "S3 bucket name"),
    ("dev", {"bucket": "192.168.1.1"}, "rentagpu:bucket", "not an IP address"),
    ("dev", {"inputPrefix": "jobs/../secrets/"}, "rentagpu:inputPrefix", "without '..'"),
    ("dev", {"outputPrefix": "/jobs/output/"}, "rentagpu:outputPrefix", "no leading '/'"),
    (
        "dev",
        {"outputPrefix": "jobs/input/results/"},
        "rentagpu:outputPrefix",
        "overlaps inputPrefix",
    ),
    ("dev", {"aws:region": "moon-base-1"}, "aws:region", "AWS region code"),
    ("dev", {"aws:region": "us-east-1\n"}, "aws:region", "AWS region code"),
    ("dev", {"bucket": "acme-ml-rentagpu-dev\n"}, "rentagpu:bucket", "S3 bucket name"),
    ("dev", {"githubOwner": ""}, "rentagpu:githubOwner", "is required"),
    ("dev", {"githubOwner": "-acme"}, "rentagpu:githubOwner", "GitHub login"),
    (
        "dev",
        {"githubRepository": "acme/rentagpu"},
        "rentagpu:githubRepository",
        "without the owner",
    ),
    ("dev", {"modalWorkspaceId": "workspace-1"}, "rentagpu:modalWorkspaceId", "modal token info"),
    (
        "dev",
        {"modalServiceUserRoles": {"ci": "admin"}},
        "rentagpu:modalServiceUserRoles.ci",
        "contributor, viewer, no-access",
    ),
    (
        "prod",
        {"deploymentBranches": ["main", "release/*"]},
        "rentagpu:deploymentBranches",
        "main only",
    ),
    ("dev", {"reviewrs": ["alice"]}, "rentagpu:reviewrs", "not a known key"),
    ("dev", {"awsAuth": "password"}, "rentagpu:awsAuth", "oidc, access-key"),
    ("dev", {"gpus": ["Z9000"]}, "rentagpu:gpus[0]", "Modal GPU type"),
    ("dev", {"gpus": ["H100:0"]}, "rentagpu:gpus[0]", "optionally ':N' (1-8)"),
    ("dev", {"gpus": ["H100:abc"]}, "rentagpu:gpus[0]", "Modal GPU type"),
    ("dev", {"gpus": ["h100", "H100"]}, "rentagpu:gpus", "same GPU twice"),
    (
        "dev",
        {"githubOwner": RawValue("acme-ml", secret=True)},
        "rentagpu:githubOwner",
        "without --secret",
    ),
    ("dev", {"ownsAccountSingletons": "yes"}, "rentagpu:ownsAccountSingletons", "true or false"),
]


@pytest.mark.parametrize(
    ("stack", "overrides", "key", "words"), MISTAKES, ids=[f"{m[2]}:{m[3]}" for m in MISTAKES]
)
def test_each_mistake_is_one_clear_message_naming_the_key(stack, overrides, key, words) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(stack, raw_config(stack, **overrides))
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{key}:"), problems[0]
    assert words in problems[0]
    assert f"stack '{stack}'" in str(caught.value) and "nothing was changed" in str(caught.value)


def test_a_value_stored_as_a_secret_is_never_echoed_even_when_wrong() -> None:
    leaked = PLANTED["rentagpu:modalTokenSecret"]
    with pytest.raises(ConfigError) as caught:
        parse_config("dev", raw_config("dev", githubOwner=RawValue(leaked, secret=True)))
    assert leaked not in str(caught.value)


def test_gpu_names_are_normalised_the_way_the_app_deploys_them() -> None:
    assert stack_config("dev", gpus=["h100:2", "a100-80gb"]).modal.gpus == ("H100:2", "A100-80GB")


def test_the_mistake_table_covers_at_least_twelve_distinct_keys() -> None:
    assert len({m[2] for m in MISTAKES}) >= 12


def test_every_problem_is_reported_at_once() -> None:
    raw = raw_config(
        "prod", bucket="UPPER", reviewers=None, reviewerTeams=None, requiredApprovals=0
    )
    with pytest.raises(ConfigError) as caught:
        parse_config("prod", raw)
    keys = sorted(p.split(":")[0] + ":" + p.split(":")[1] for p in caught.value.problems)
    assert keys == ["rentagpu:bucket", "rentagpu:requiredApprovals", "rentagpu:reviewers"]


def test_a_plaintext_token_is_never_echoed_in_the_error() -> None:
    leaked = PLANTED["rentagpu:modalTokenSecret"]
    raw = raw_config("dev", **{**FALLBACK_TOKEN, "modalTokenSecret": RawValue(leaked)})
    with pytest.raises(ConfigError) as caught:
        parse_config("dev", raw)
    assert leaked not in str(caught.value)
    assert "rotate the exposed value" in str(caught.value)


def test_bad_config_declares_no_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """The program parses config before declaring anything: a mistake leaves the stack untouched."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="rentagpu", stack="prod", preview=False)
    raw = raw_config("prod", reviewers=None, reviewerTeams=None)
    monkeypatch.setattr(program, "raw_config_from_pulumi", lambda: raw)
    with pytest.raises(pulumi.RunError) as caught:
        program.main()
    assert "rentagpu:reviewers" in str(caught.value)
    assert mocks.resources == []


def test_raw_config_from_the_engine_keeps_secret_flags() -> None:
    """Under the engine, config arrives as key/value strings plus a list of secret keys."""
    from infra.program import raw_config_from_pulumi

    pulumi.runtime.set_all_config(
        {"rentagpu:bucket": "b-1", "rentagpu:modalTokenId": "t", "other:key": "x"},
        secret_keys=["rentagpu:modalTokenId"],
    )
    try:
        raw = raw_config_from_pulumi()
    finally:
        pulumi.runtime.set_all_config({}, secret_keys=[])
    assert raw["rentagpu:bucket"] == RawValue("b-1", secret=False)
    assert raw["rentagpu:modalTokenId"] == RawValue("t", secret=True)
    assert "other:key" not in raw


def test_every_config_key_is_documented_in_the_readme() -> None:
    from infra.core.config_schema import KNOWN_KEYS
    from infra.tools.plan import PROJECT_DIR

    readme = (PROJECT_DIR / "README.md").read_text()
    missing = [key for key in KNOWN_KEYS if f"| `{key}` |" not in readme]
    assert missing == []
