"""`python -m infra plan`: renders both stacks offline, masks secrets, reports config mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.core import names
from infra.tools.plan import PROJECT_DIR, plan_document
from tests.stacks import FALLBACK_TOKEN, PLANTED, raw_config

OFFLINE_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "HOME": os.environ.get("HOME", ""),
    # no credentials of any kind, and a proxy that goes nowhere: the plan must not need the network
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
}


def run_plan(
    *args: str, stdin: str | None = None, cwd: Path = PROJECT_DIR
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra", "plan", *args],
        cwd=cwd,
        env=OFFLINE_ENV,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def pulumi_config_json(stack: str, **overrides: object) -> str:
    """What `pulumi config --json --show-secrets` prints for a stack with these values."""
    document = {}
    for key, raw in raw_config(stack, **overrides).items():
        document[key] = {"value": raw.value, "secret": raw.secret}
    return json.dumps(document)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_files_render_with_no_credentials(stack) -> None:
    result = run_plan("--stack", stack, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"stack", "resources", "violations", "unset_secrets"}
    assert document["stack"] == stack
    assert document["violations"] == []
    # committed stack files hold no secret, and none is required: CI's tokens are minted
    assert document["unset_secrets"] == []
    types = {r["type"] for r in document["resources"]}
    assert "github:index/repositoryEnvironment:RepositoryEnvironment" in types
    assert "aws:iam/role:Role" in types
    for resource in document["resources"]:
        assert set(resource) == {"type", "name", "inputs", "provider"}
    # Every GitHub resource is bound to the explicit provider of the configured owner.
    owner = "example-org"
    for resource in document["resources"]:
        if resource["type"].startswith("github:"):
            assert resource["provider"]["type"] == "pulumi:providers:github", resource["name"]
            assert resource["provider"]["inputs"]["owner"] == owner, resource["name"]


def test_text_plan_lists_every_resource_and_the_verdicts() -> None:
    text = run_plan("--stack", "prod").stdout
    document = json.loads(run_plan("--stack", "prod", "--json").stdout)
    for resource in document["resources"]:
        assert f"+ {resource['type']}  {resource['name']}\n" in text
    assert f"{len(document['resources'])} resources:" in text
    assert "policy verdicts: all checks passed" in text
    assert "secrets not set" not in text


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_planted_secrets_never_appear_in_text_or_json(stack) -> None:
    config = pulumi_config_json(stack, **FALLBACK_TOKEN)
    outputs = [
        run_plan("--stack", stack, "--config-json", "-", stdin=config),
        run_plan("--stack", stack, "--json", "--config-json", "-", stdin=config),
    ]
    # prod's config may not supply CI's deploy token (prod-state-holds-no-credential): the plan
    # says so and exits 1, still without echoing it
    for result in outputs:
        assert result.returncode == (1 if stack == "prod" else 0), result.stderr
        for value in PLANTED.values():
            assert value not in result.stdout and value not in result.stderr
    document = json.loads(outputs[1].stdout)
    assert document["unset_secrets"] == []
    secrets = [r for r in document["resources"] if r["type"].endswith("ActionsEnvironmentSecret")]
    # the deploy token, and in prod the read-only token (in prod-readonly): sealed, masked
    assert len(secrets) == (2 if stack == "dev" else 4)
    assert {s["inputs"]["valueEncrypted"] for s in secrets} == {"[secret]"}
    (token,) = [r for r in document["resources"] if r["name"] == f"{stack}-ci-deploy-token-1"]
    assert (token["inputs"]["token_id"], token["inputs"]["token_secret"]) == ("[secret]",) * 2


def test_a_plaintext_secret_in_a_stack_file_is_refused_without_echoing_it(tmp_path) -> None:
    leaked = PLANTED["rentagpu:modalTokenSecret"]
    (tmp_path / "Pulumi.dev.yaml").write_text(
        (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
        + "  rentagpu:modalTokenId:\n    secure: v1:AAAAexampleciphertext\n"
        + f"  rentagpu:modalTokenSecret: {leaked}\n"
    )
    document = None
    from infra.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        document = plan_document("dev", project_dir=tmp_path)
    assert document is None
    assert "rentagpu:modalTokenSecret: is stored in plain text" in str(caught.value)
    assert leaked not in str(caught.value)


def test_secure_values_in_a_stack_file_count_as_set_and_stay_masked(tmp_path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(
        (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
        + "  rentagpu:modalTokenId:\n    secure: v1:AAAAexampleciphertext\n"
        + "  rentagpu:modalTokenSecret:\n    secure: v1:AAAAotherciphertext\n"
    )
    document = plan_document("dev", project_dir=tmp_path)
    assert document["unset_secrets"] == []
    (token,) = [r for r in document["resources"] if r["name"] == "dev-ci-deploy-token-1"]
    assert token["inputs"]["token_secret"] == "[secret]"  # the fallback, adopted
    assert "v1:AAAA" not in json.dumps(document)


def test_a_config_mistake_exits_2_with_one_line_per_problem_and_no_traceback() -> None:
    config = pulumi_config_json("prod", reviewers=None, reviewerTeams=None, bucket="No_Such")
    result = run_plan("--stack", "prod", "--config-json", "-", stdin=config)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "stack 'prod' config has 2 problems; nothing was changed" in result.stderr
    assert "  - rentagpu:bucket: 'No_Such' is not valid" in result.stderr
    assert "  - rentagpu:reviewers: prod needs at least one required reviewer" in result.stderr


def test_an_unknown_stack_is_a_clear_error() -> None:
    result = run_plan("--stack", "staging")
    assert result.returncode == 2
    assert "Pulumi.staging.yaml: no such stack file" in result.stderr


def test_malformed_config_json_is_a_clear_error() -> None:
    result = run_plan("--stack", "dev", "--config-json", "-", stdin="{not json")
    assert result.returncode == 2
    assert "--config-json: not JSON" in result.stderr


def test_the_committed_stacks_share_nothing() -> None:
    """A policy pack sees one stack at a time; this checks both committed stacks together."""
    from infra.core.config import parse_config
    from infra.tools.offline import render
    from infra.tools.plan import evaluate_stacks, load_config

    renderings = [render(parse_config(s, load_config(s).raw)) for s in ("dev", "prod")]
    assert evaluate_stacks(renderings) == []


def test_the_plan_catches_a_role_that_trusts_another_repositorys_jobs(monkeypatch) -> None:
    """Every CI role's subject carries the repository's ids, looked up once; the plan's stack
    policy fails a stack in which one role names other ids."""
    from infra.stages.aws import iam

    original = iam.github_trust

    def other_repository_for_drift(arn, owner_id, repository_id, context):
        if context == names.MAIN_BRANCH_CONTEXT:
            repository_id += 1
        return original(arn, owner_id, repository_id, context)

    monkeypatch.setattr(iam, "github_trust", other_repository_for_drift)
    document = plan_document("dev", config_json=pulumi_config_json("dev"))
    policies = {v["policy"] for v in document["violations"]}
    assert "github-subjects-name-one-repository" in policies


def test_an_unreadable_config_json_file_is_a_clear_error(tmp_path) -> None:
    result = run_plan("--stack", "dev", "--config-json", str(tmp_path / "missing.json"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "stack 'dev' config has 1 problem" in result.stderr
    assert "--config-json: cannot read" in result.stderr


def test_numbers_show_as_the_whole_numbers_they_are() -> None:
    document = plan_document("prod", config_json=pulumi_config_json("prod"))
    env = next(r for r in document["resources"] if r["name"] == "prod-environment")
    assert all(isinstance(i, int) for i in env["inputs"]["reviewers"][0]["users"])
    assert ".0," not in json.dumps(document) and ".0]" not in json.dumps(document)
