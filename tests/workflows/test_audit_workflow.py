"""audit.yml: read as data, and its scripts run for real against a fake `python -m infra audit`
(a script standing in for .venv/bin/python) and a fake `gh`.

The audit script must turn exit 7 into a findings verdict, 0 into a clean one, and anything else
into a failed job with no verdict (so no issue is touched: an incomplete audit is never clean).
The issue script must open one issue per stack, update it quietly while the findings are the
same, comment when they change, and close it once an audit finds nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra.tools.audit.findings import AuditReport, Finding, Severity, SourceResult
from infra.tools.audit.render import digest, render_json
from tests.tools.audit.support import scope_for
from tests.workflows.support import (
    FAKE_GH,
    load_workflow,
    make_executable,
    run_issue_script,
    run_script,
    step_named,
    step_using,
    verbs,
)

FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_DIR/python.args"
out=""
while [[ $# -gt 0 ]]; do
  if [[ "$1" == --write-json ]]; then out="$2"; fi
  shift
done
if [[ -n "$out" ]]; then cp "$FAKE_DIR/report.json" "$out"; fi
cat "$FAKE_DIR/report.md"
exit "$(cat "$FAKE_DIR/exit_code")"
"""

REPORT = "### Audit of stack `prod`: 1 finding (1 high)\n\n| severity | finding |\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    fake = tmp_path / "fake"
    make_executable(tmp_path / ".venv" / "bin" / "python", FAKE_PYTHON)
    make_executable(fake / "gh", FAKE_GH)
    return tmp_path


def jobs() -> dict:
    return load_workflow("audit")["jobs"]


def _report(stack: str = "prod") -> AuditReport:
    finding = Finding("aws", "aws-role-unused", Severity.LOW, "role `x`", "unused", "cmd")
    return AuditReport.from_results(scope_for(stack), [SourceResult(findings=[finding])])


def run_audit_step(workspace: Path, job: str, exit_code: int):
    fake = workspace / "fake"
    (fake / "report.md").write_text(REPORT)
    (fake / "report.json").write_text(render_json(_report()))  # what --write-json writes
    (fake / "exit_code").write_text(str(exit_code))
    script = step_named(jobs()[job], "python -m infra audit")["run"]
    summary = workspace / "summary.md"
    stack = jobs()[job]["env"]["STACK"]
    result = run_script(
        script,
        workspace,
        {"STACK": stack, "FAKE_DIR": str(fake), "GITHUB_STEP_SUMMARY": str(summary)},
        path_prepend=fake,
    )
    return result, summary


# The workflow as data.


def test_audit_workflow_runs_weekly_and_on_demand_from_main_only() -> None:
    document = load_workflow("audit")
    assert set(document["on"]) == {"schedule", "workflow_dispatch"}
    assert document["on"]["schedule"][0]["cron"].endswith("* * 1")  # weekly, Mondays
    for job_id, job in jobs().items():
        assert "github.ref == 'refs/heads/main'" in job["if"], job_id
    assert jobs()["issue"]["needs"] == ["audit-dev", "audit-prod"]
    assert jobs()["audit-dev"]["needs"] == "aws-dev"
    assert "!cancelled()" in jobs()["audit-dev"]["if"]


def test_audit_workflow_holds_no_deploy_credential_and_no_backend_token() -> None:
    text = yaml.safe_dump(load_workflow("audit"))
    for name in ("AWS_DEPLOY_ROLE_ARN", "secrets.MODAL_TOKEN_", "PULUMI_GITHUB_TOKEN", "PULUMI_"):
        assert name not in text, name
    roles = {
        job: step_using(jobs()[job], "aws-actions/configure-aws-credentials")["with"]
        for job in ("aws-dev", "audit-prod")
    }
    assert roles["aws-dev"]["role-to-assume"] == "${{ vars.RENTAGPU_DEV_DRIFT_ROLE_ARN }}"
    assert roles["audit-prod"]["role-to-assume"] == "${{ vars.AWS_DRIFT_ROLE_ARN }}"


def test_each_audit_reads_its_stack_with_that_stack_s_read_tokens() -> None:
    """CI's Modal tokens are scoped to their own environment, so prod's read token could not see
    dev: dev's audit uses dev's (repository secrets), prod's uses prod-readonly's."""
    assert jobs()["audit-prod"].get("environment") == "prod-readonly"
    assert "environment" not in jobs()["audit-dev"]
    readers = {job_id for job_id, job in jobs().items() if "secrets." in yaml.safe_dump(job)}
    assert readers == {"audit-dev", "audit-prod"}
    expected = {
        "audit-dev": ("RENTAGPU_DEV_MODAL_READ_TOKEN_ID", "RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET"),
        "audit-prod": ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET"),
    }
    for job_id, (token_id, token_secret) in expected.items():
        env = step_named(jobs()[job_id], "python -m infra audit")["env"]
        assert env == {
            "GITHUB_TOKEN": "${{ secrets.RENTAGPU_GITHUB_READ_TOKEN }}",
            "MODAL_TOKEN_ID": f"${{{{ secrets.{token_id} }}}}",
            "MODAL_TOKEN_SECRET": f"${{{{ secrets.{token_secret} }}}}",
        }


def test_both_audits_run_the_same_script_and_only_the_issue_job_can_write() -> None:
    dev = step_named(jobs()["audit-dev"], "python -m infra audit")["run"]
    assert dev == step_named(jobs()["audit-prod"], "python -m infra audit")["run"]
    issue = step_named(jobs()["issue"], "Open, update or close")
    assert issue["env"]["GH_TOKEN"] == "${{ github.token }}"
    for job_id in ("aws-dev", "audit-dev", "audit-prod"):
        assert "github.token" not in yaml.safe_dump(jobs()[job_id]), job_id
    assert not any("checkout" in s.get("uses", "") for s in jobs()["issue"]["steps"])
    assert (
        step_using(jobs()["aws-dev"], "actions/upload-artifact")["with"]["name"] == "audit-dev-aws"
    )


# The scripts.


def test_audit_exit_7_is_a_findings_verdict_with_a_digest(workspace: Path) -> None:
    result, summary = run_audit_step(workspace, "audit-prod", 7)
    assert result.returncode == 0, result.stderr
    assert (workspace / "audit" / "status").read_text().strip() == "findings"
    assert (workspace / "audit" / "digest").read_text().strip() == digest(_report())
    assert (workspace / "audit" / "report.md").read_text() == REPORT
    assert not (workspace / "audit" / "report.json").exists()  # only the markdown travels
    assert REPORT in summary.read_text()
    args = (workspace / "fake" / "python.args").read_text()
    assert args.startswith("-m infra audit --stack prod --write-json audit/report.json")


def test_audit_exit_0_is_clean(workspace: Path) -> None:
    result, _ = run_audit_step(workspace, "audit-prod", 0)
    assert result.returncode == 0, result.stderr
    assert (workspace / "audit" / "status").read_text().strip() == "clean"


@pytest.mark.parametrize("exit_code", [1, 2, 3])
def test_audit_an_incomplete_audit_fails_the_job_and_leaves_no_verdict(
    workspace: Path, exit_code: int
) -> None:
    result, _ = run_audit_step(workspace, "audit-prod", exit_code)
    assert result.returncode == exit_code
    assert "no audit issue is opened or closed" in result.stdout
    assert not (workspace / "audit" / "status").exists()


def test_audit_dev_merges_the_aws_part_when_aws_dev_produced_it(workspace: Path) -> None:
    (workspace / "aws").mkdir()
    (workspace / "aws" / "report.json").write_text("{}")
    result, _ = run_audit_step(workspace, "audit-dev", 7)
    assert result.returncode == 0, result.stderr
    args = (workspace / "fake" / "python.args").read_text()
    assert "--stack dev --skip aws --merge aws/report.json" in args


def test_audit_dev_without_the_aws_part_audits_aws_itself_and_so_cannot_be_clean(
    workspace: Path,
) -> None:
    result, _ = run_audit_step(workspace, "audit-dev", 2)  # no AWS credentials in that job
    args = (workspace / "fake" / "python.args").read_text()
    assert "--skip" not in args and "--merge" not in args
    assert result.returncode == 2 and not (workspace / "audit" / "status").exists()


def test_aws_dev_keeps_its_part_only_when_it_checked_everything(workspace: Path) -> None:
    fake = workspace / "fake"
    (fake / "report.md").write_text('{"stack": "dev"}')
    (fake / "report.json").write_text("{}")
    script = step_named(jobs()["aws-dev"], "python -m infra audit")["run"]
    for code, expected in ((7, 0), (0, 0), (2, 2)):
        (fake / "exit_code").write_text(str(code))
        result = run_script(
            script, workspace, {"STACK": "dev", "FAKE_DIR": str(fake)}, path_prepend=fake
        )
        assert result.returncode == expected, (code, result.stdout)
    args = (fake / "python.args").read_text().splitlines()[0]
    assert args == "-m infra audit --stack dev --skip modal --skip github --json"


def run_issue(
    workspace: Path,
    status: str,
    open_issue: str | None = None,
    open_body: str = "",
    digest: str = "ab" * 8,
) -> list[str]:
    audit = workspace / "audit"
    audit.mkdir(exist_ok=True)
    (audit / "status").write_text(status + "\n")
    (audit / "digest").write_text(digest + "\n")
    (audit / "report.md").write_text(REPORT)
    return run_issue_script(workspace, "audit", open_issue, open_body)


def test_audit_findings_without_an_open_issue_open_one(workspace: Path) -> None:
    calls = run_issue(workspace, "findings")
    assert verbs(calls) == ["label create", "issue list", "issue create"]
    assert "--title Audit findings in stack prod --label audit --body-file body.md" in calls[-1]
    body = (workspace / "body.md").read_text()
    assert body.startswith(f"<!-- rentagpu-audit stack=prod findings={'ab' * 8} -->")
    assert REPORT in body


def test_audit_unchanged_findings_update_the_issue_without_a_comment(workspace: Path) -> None:
    marker = f"<!-- rentagpu-audit stack=prod findings={'ab' * 8} -->"
    calls = run_issue(workspace, "findings", open_issue="9", open_body=marker + "\nold")
    assert verbs(calls) == ["label create", "issue list", "issue view", "issue edit"]


def test_audit_changed_findings_update_the_issue_and_say_so(workspace: Path) -> None:
    old = "<!-- rentagpu-audit stack=prod findings=0000000000000000 -->\nold"
    calls = run_issue(workspace, "findings", open_issue="9", open_body=old)
    assert verbs(calls)[-2:] == ["issue edit", "issue comment"]


def test_audit_clean_closes_the_open_issue_and_otherwise_does_nothing(workspace: Path) -> None:
    calls = run_issue(workspace, "clean", open_issue="9")
    assert verbs(calls) == ["label create", "issue list", "issue close"]
    assert calls[-1].startswith("issue close 9 --comment No audit findings in stack prod")
    (workspace / "fake" / "gh.calls").unlink()
    (workspace / "fake" / "open_issue").unlink()
    assert verbs(run_issue(workspace, "clean")) == ["label create", "issue list"]


def test_audit_issue_digest_is_sanitised(workspace: Path) -> None:
    # The digest comes from an artifact: anything but hex is dropped before it reaches a marker.
    run_issue(workspace, "findings", digest='ab"; $(touch pwned) #12')
    first = (workspace / "body.md").read_text().splitlines()[0]
    assert re.fullmatch(r"<!-- rentagpu-audit stack=prod findings=[0-9a-f]{1,16} -->", first)
    assert not (workspace / "pwned").exists()
