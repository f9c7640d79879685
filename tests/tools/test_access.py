"""`python -m infra access`: the credential graph of this checkout, and of copies that bring back
each of the three paths into prod issue 10 found, each of which must be a violation (exit 1)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.tools.access.invariant import credential_graph
from infra.tools.access.report import README_BEGIN, README_END, readme_table, stack_graph
from infra.tools.access.stack import stack_facts
from infra.tools.access.workflows import job_uses
from infra.tools.offline import render
from infra.tools.plan import PROJECT_DIR
from tests.stacks import stack_config

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
CONTRACT = {"stack", "credentials", "violations"}
CREDENTIAL = {"name", "held_in", "obtainable_by", "needs_prod_approval", "reaches"}
REACH = {"system", "what", "environment", "access"}


def access(*args: str, project: Path = PROJECT_DIR) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra", "access", *args, "--project-dir", str(project)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what `access` reads: the stack files and the workflows."""
    for path in PROJECT_DIR.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copytree(WORKFLOWS, tmp_path / ".github" / "workflows")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


def violations(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)
    assert (result.returncode == 1) == bool(document["violations"])
    return document["violations"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_committed_stacks_and_workflows_keep_the_invariant(stack) -> None:
    result = access("--stack", stack, "--json")
    assert result.returncode == 0, result.stdout
    document = json.loads(result.stdout)
    assert set(document) == CONTRACT and document["stack"] == stack
    assert document["violations"] == []
    for credential in document["credentials"]:
        assert set(credential) == CREDENTIAL
        for reach in credential["reaches"]:
            assert set(reach) == REACH
            assert reach["access"] in ("read", "write", "deploy", "admin", "decrypt")
            # The invariant itself, on the output: what writes to prod needs prod's approval.
            if reach["environment"] == "prod" and reach["access"] in ("write", "deploy", "admin"):
                assert credential["needs_prod_approval"], credential["name"]
    names = {c["name"] for c in document["credentials"]}
    assert {
        f"Modal deploy token of {stack}",
        f"Modal read token of {stack}",
        f"AWS role rentagpu-{stack}-deploy",
        f"stack {stack}: config and state (decryption)",
        "GitHub read token",
    } <= names
    assert any(n.startswith(f"Pulumi token of stack {stack} (write") for n in names)


def test_prod_s_deploy_token_needs_a_prod_reviewer_and_its_readers_reach_nothing_that_writes():
    document = json.loads(access("--stack", "prod", "--json").stdout)
    by_name = {c["name"]: c for c in document["credentials"]}
    deploy = by_name["Modal deploy token of prod"]
    assert deploy["needs_prod_approval"] is True
    assert {o["approval"] for o in deploy["obtainable_by"]} == {"a required reviewer of 'prod'"}
    # prod's read credentials can be had from main (drift) or any branch (PR previews) ...
    state = by_name["stack prod: config and state (decryption)"]
    assert state["needs_prod_approval"] is False
    # ... and decrypting prod's state yields nothing: CI's tokens are sealed, no key is stored.
    held = [
        c["name"]
        for c in document["credentials"]
        if any(o.get("via") == state["name"] for o in c["obtainable_by"])
    ]
    assert held == []


def test_path_1_a_prod_deploy_token_in_prod_s_config_is_a_violation(checkout) -> None:
    """Issue 10, path 1: prod's deploy token sat in prod's config, which prod-readonly's Pulumi
    token (drift, every day, no reviewer) decrypts. The fallback brings it back."""
    stack_file = checkout / "Pulumi.prod.yaml"
    stack_file.write_text(
        stack_file.read_text()
        + "  rentagpu:modalTokenId:\n    secure: v1:AAAAexampleid\n"
        + "  rentagpu:modalTokenSecret:\n    secure: v1:AAAAexamplesecret\n"
    )
    found = violations(access("--stack", "prod", "--json", project=checkout))
    (violation,) = [v for v in found if v["credential"] == "Modal deploy token of prod"]
    assert "obtainable without a prod reviewer's approval" in violation["message"]
    assert "stack prod: config and state" in violation["message"]
    assert "modal deploy" in violation["message"]


def test_path_2_an_admin_github_token_in_dev_s_automatic_deploy_is_a_violation(checkout) -> None:
    """Issue 10, path 2: dev's deploy, on every merge, held a repository-admin GitHub token."""
    edit(
        checkout / ".github/workflows/deploy.yml",
        "GITHUB_TOKEN: ${{ secrets.RENTAGPU_GITHUB_READ_TOKEN }}\n          GITHUB_OWNER",
        "GITHUB_TOKEN: ${{ secrets.PULUMI_GITHUB_TOKEN }}\n          GITHUB_OWNER",
    )
    found = violations(access("--stack", "prod", "--json", project=checkout))
    (violation,) = [v for v in found if "PULUMI_GITHUB_TOKEN" in v["credential"]]
    assert "deploy.yml / deploy" in violation["message"]
    assert "github admin" in violation["message"]


def test_path_3_one_service_user_in_both_stacks_is_a_violation(checkout) -> None:
    """Issue 10, path 3: both example stacks made `ci-deployer` a contributor; a service user has
    one token, and dev's was readable from any branch."""
    for stack in ("dev", "prod"):
        edit(
            checkout / f"Pulumi.{stack}.yaml",
            "  aws:region:",
            "  rentagpu:modalServiceUserRoles:\n    ci-deployer: contributor\n  aws:region:",
        )
    found = violations(access("--stack", "prod", "--json", project=checkout))
    messages = " ".join(v["message"] for v in found)
    assert "Modal service user 'ci-deployer' is used by the dev and prod stacks" in messages
    prod_grant = [v for v in found if v["credential"] == "Modal service user 'ci-deployer' of prod"]
    assert prod_grant and "modal deploy" in prod_grant[0]["message"]


def test_prod_in_access_key_mode_puts_a_prod_key_where_prod_s_readers_decrypt_it(checkout):
    edit(
        checkout / "Pulumi.prod.yaml",
        "  aws:region:",
        "  rentagpu:awsAuth: access-key\n  aws:region:",
    )
    found = violations(access("--stack", "prod", "--json", project=checkout))
    (violation,) = [v for v in found if v["credential"].startswith("AWS access key")]
    assert "stack prod: config and state" in violation["message"]


def test_one_pulumi_token_for_both_stacks_and_an_unknown_secret_are_violations(checkout):
    drift = checkout / ".github/workflows/drift.yml"
    text = drift.read_text()
    # prod's drift check reading dev's repository Pulumi token, and a secret nothing describes
    prod_job = text.index("check-prod:")
    tail = text[prod_job:].replace(
        "PULUMI_ACCESS_TOKEN: ${{ secrets.PULUMI_ACCESS_TOKEN }}",
        "PULUMI_ACCESS_TOKEN: ${{ secrets.RENTAGPU_DEV_PULUMI_READ_TOKEN }}\n"
        "          EXTRA: ${{ secrets.SOMEONES_TOKEN }}",
        1,
    )
    drift.write_text(text[:prod_job] + tail)
    found = violations(access("--stack", "dev", "--json", project=checkout))
    messages = [v["message"] for v in found]
    assert any("one Pulumi token serves the dev and prod stacks" in m for m in messages)
    assert any(
        v["credential"].startswith("SOMEONES_TOKEN")
        and "nothing says what it reaches" in v["message"]
        for v in found
    )


def test_a_repository_that_lets_workflows_approve_prs_makes_every_pr_job_token_a_violation():
    """With "Allow GitHub Actions to create and approve pull requests" on, a preview job's token
    (`pull-requests: write`, running the PR's own code) approves its own pull request."""
    facts = {stack: stack_facts(render(stack_config(stack)), stack) for stack in ("dev", "prod")}
    jobs = list(job_uses(WORKFLOWS))
    assert not credential_graph(facts, jobs).violations
    facts["prod"].can_approve_prs = True
    found = credential_graph(facts, jobs).violations
    assert {v.credential for v in found} == {
        "job token of preview.yml / preview-dev",
        "job token of preview.yml / preview-prod",
    }
    assert all("approve pull requests into main" in v.message for v in found)


def test_the_readme_table_is_the_graph() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    assert readme[start:end] == readme_table(stack_graph())
