"""The runtime secret's contract: the keys, the two auth modes, and errors that name the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modal_app import contract
from modal_app.contract import required_keys
from modal_app.errors import SettingsError
from modal_app.settings import Settings
from tests.modal_app.conftest import COMMON, ROLE, fake_key_pair

ROOT = Path(__file__).resolve().parents[2]


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as error:
        Settings.from_env(environ)
    return error.value.problems


def test_oidc_mode_is_chosen_by_the_role_arn() -> None:
    settings = Settings.from_env(COMMON | {contract.ROLE_ARN: ROLE})

    assert settings.auth_mode == contract.OIDC
    assert (settings.region, settings.bucket) == ("eu-west-2", "rentagpu-dev-data")
    assert (settings.input_prefix, settings.output_prefix) == ("inputs/", "outputs/")
    assert settings.role_arn == ROLE and settings.access_key_id is None
    assert settings.endpoint_url is None


def test_access_key_mode_is_chosen_by_the_keys_and_never_shows_them() -> None:
    pair = fake_key_pair()
    settings = Settings.from_env(COMMON | pair)

    assert settings.auth_mode == contract.ACCESS_KEY
    assert settings.secret_access_key == pair[contract.SECRET_ACCESS_KEY]
    assert pair[contract.SECRET_ACCESS_KEY] not in repr(settings)
    assert pair[contract.ACCESS_KEY_ID] not in repr(settings)


def test_required_keys_per_mode() -> None:
    assert required_keys("oidc") == (
        "AWS_REGION",
        "RENTAGPU_BUCKET",
        "RENTAGPU_INPUT_PREFIX",
        "RENTAGPU_OUTPUT_PREFIX",
        "AWS_ROLE_ARN",
    )
    assert required_keys("access-key") == (
        "AWS_REGION",
        "RENTAGPU_BUCKET",
        "RENTAGPU_INPUT_PREFIX",
        "RENTAGPU_OUTPUT_PREFIX",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )
    with pytest.raises(ValueError, match="unknown auth mode 'sso'"):
        required_keys("sso")


@pytest.mark.parametrize("mode", contract.AUTH_MODES)
def test_a_secret_with_exactly_the_required_keys_is_accepted(mode: str) -> None:
    values = COMMON | {contract.ROLE_ARN: ROLE} | fake_key_pair()
    assert Settings.from_env({k: values[k] for k in required_keys(mode)}).auth_mode == mode


def test_an_empty_secret_names_every_missing_key_at_once() -> None:
    problems = problems_of({})

    assert [p.split(":")[0] for p in problems] == [*contract.COMMON_KEYS, contract.ROLE_ARN]
    assert all("is required" in p for p in problems)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        (contract.AWS_REGION, "the-moon", "an AWS region code"),
        (contract.AWS_REGION, "us-east-1\n", "an AWS region code"),
        (contract.BUCKET, "Rentagpu_Data", "an S3 bucket name"),
        (contract.BUCKET, "s3://rentagpu-data", "an S3 bucket name"),
        (contract.INPUT_PREFIX, "/abs/", "relative"),
        (contract.INPUT_PREFIX, "inputs", "ending in '/'"),
        (contract.INPUT_PREFIX, "a/../b/", "without '..'"),
        (contract.OUTPUT_PREFIX, "inputs/results/", "overlaps"),
        (contract.ROLE_ARN, "arn:aws:iam::123:user/someone", "an IAM role ARN"),
        (contract.ENDPOINT_URL, "ftp://example", "an http(s) URL"),
    ],
)
def test_an_invalid_value_is_named_with_what_is_allowed(key: str, value: str, words: str) -> None:
    problems = problems_of(COMMON | {contract.ROLE_ARN: ROLE, key: value})

    assert len(problems) == 1
    assert problems[0].startswith(f"{key}: ")
    assert words in problems[0]


def test_both_modes_at_once_are_refused() -> None:
    (problem,) = problems_of(COMMON | {contract.ROLE_ARN: ROLE} | fake_key_pair())

    assert (
        contract.ROLE_ARN in problem and contract.ACCESS_KEY_ID in problem and "both set" in problem
    )


def test_half_a_key_pair_names_the_missing_half_and_never_echoes_the_other() -> None:
    pair = fake_key_pair()
    missing_secret = problems_of(COMMON | {contract.ACCESS_KEY_ID: pair[contract.ACCESS_KEY_ID]})
    bad_id = problems_of(
        COMMON | pair | {contract.ACCESS_KEY_ID: "lower-" + pair[contract.SECRET_ACCESS_KEY]}
    )

    assert missing_secret == [
        f"{contract.SECRET_ACCESS_KEY}: is required (set by the Modal secret 'rentagpu-runtime')"
    ]
    assert bad_id[0].startswith(f"{contract.ACCESS_KEY_ID}: its value is not valid")
    assert pair[contract.SECRET_ACCESS_KEY] not in str(bad_id)


def test_importing_the_contract_is_cheap() -> None:
    """The Pulumi program imports it: no modal, boto3 or numpy, nor any other part of the app,
    may come along."""
    code = (
        "import json, sys, modal_app.contract;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('modal', 'boto3', 'botocore', 'numpy') or m.startswith('modal_app.') and"
        " m != 'modal_app.contract')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
