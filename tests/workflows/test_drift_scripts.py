"""drift.yml's two scripts, run for real against a fake `pulumi` and a fake `gh`.

The check script must turn exit code 7 into a drift verdict with a report, 0 into a clean
verdict, and anything else into a failed job with no verdict at all (so no issue is touched).
The issue script must open one issue per stack, update it quietly while the drift is unchanged,
comment when it changes, and close it once the drift is gone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflows.support import (
    FAKE_GH,
    FIXTURES,
    ROOT,
    load_workflow,
    make_executable,
    run_issue_script,
    run_script,
    step_named,
    verbs,
)

FAKE_PULUMI = """#!/usr/bin/env bash
echo "$@" > "$FAKE_DIR/pulumi.args"
cat "$FAKE_DIR/stdout.json"
echo "fake pulumi: diagnostics on stderr" >&2
exit "$(cat "$FAKE_DIR/exit_code")"
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A runner workspace: the repo's python package and venv, a fake bin dir, a summary file."""
    # The checkout's packages: infra imports modal_app (the app's own names and settings).
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    (tmp_path / "modal_app").symlink_to(ROOT / "modal_app")
    # The scripts call .venv/bin/python: point it at the environment running these tests.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    fake = tmp_path / "fake"
    fake.mkdir()
    make_executable(fake / "pulumi", FAKE_PULUMI)
    make_executable(fake / "gh", FAKE_GH)
    return tmp_path


def run_check(workspace: Path, fixture: str | None, exit_code: int, stack: str = "prod"):
    fake = workspace / "fake"
    (fake / "stdout.json").write_text((FIXTURES / fixture).read_text() if fixture else "")
    (fake / "exit_code").write_text(str(exit_code))
    script = step_named(load_workflow("drift")["jobs"]["check-prod"], "pulumi refresh")["run"]
    summary = workspace / "summary.md"
    result = run_script(
        script,
        workspace,
        {"STACK": stack, "FAKE_DIR": str(fake), "GITHUB_STEP_SUMMARY": str(summary)},
        path_prepend=fake,
    )
    return result, summary


def test_exit_code_7_is_drift_with_a_report(workspace: Path) -> None:
    result, summary = run_check(workspace, "refresh_drift.json", 7)
    assert result.returncode == 0, result.stderr
    assert (workspace / "drift" / "status").read_text().strip() == "drift"
    report = (workspace / "drift" / "report.md").read_text()
    assert "Drift in stack `prod`" in report
    assert "prod-deploy-from-main" in report
    assert report in summary.read_text()
    args = (workspace / "fake" / "pulumi.args").read_text()
    assert "refresh --stack prod --preview-only --expect-no-changes --json" in args


def test_exit_code_0_is_clean(workspace: Path) -> None:
    result, _ = run_check(workspace, "refresh_no_drift.json", 0, stack="dev")
    assert result.returncode == 0, result.stderr
    assert (workspace / "drift" / "status").read_text().strip() == "clean"
    assert "No drift in stack `dev`" in (workspace / "drift" / "report.md").read_text()


@pytest.mark.parametrize("exit_code", [1, 2, 3, 6, 255])
def test_any_other_exit_code_fails_the_job_and_leaves_no_verdict(
    workspace: Path, exit_code: int
) -> None:
    result, _ = run_check(workspace, None, exit_code)
    assert result.returncode == exit_code
    assert "not drift" in result.stdout
    assert "fake pulumi: diagnostics on stderr" in result.stderr  # the reason is in the log
    assert not (workspace / "drift" / "status").exists()


def test_drift_with_unreadable_json_fails_rather_than_guessing(workspace: Path) -> None:
    result, _ = run_check(workspace, "malformed_truncated.json", 7)
    assert result.returncode == 1
    assert "could not turn pulumi's JSON into a report" in result.stdout
    assert not (workspace / "drift" / "status").exists()


# The issue job.


def run_issue(
    workspace: Path, status: str, open_issue: str | None = None, open_body: str = ""
) -> list[str]:
    drift = workspace / "drift"
    drift.mkdir(exist_ok=True)
    (drift / "status").write_text(status + "\n")
    fixture = "refresh_drift.json" if status == "drift" else "refresh_no_drift.json"
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra",
            "report",
            "--kind",
            "refresh",
            "--stack",
            "prod",
            str(FIXTURES / fixture),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    (drift / "report.md").write_text(report.stdout)
    return run_issue_script(workspace, "drift", open_issue, open_body)


def test_drift_without_an_open_issue_opens_one(workspace: Path) -> None:
    calls = run_issue(workspace, "drift")
    assert verbs(calls) == ["label create", "issue list", "issue create"]
    assert "--title Drift in stack prod --label drift --body-file body.md" in calls[-1]
    body = (workspace / "body.md").read_text()
    assert body.startswith("<!-- rentagpu-drift stack=prod report=")
    assert "prod-deploy-from-main" in body


def test_unchanged_drift_updates_the_issue_without_a_comment(workspace: Path) -> None:
    first = run_issue(workspace, "drift")
    assert first
    marker = (workspace / "body.md").read_text().splitlines()[0]
    (workspace / "fake" / "gh.calls").unlink()
    calls = run_issue(workspace, "drift", open_issue="7", open_body=marker + "\nold report")
    assert verbs(calls) == ["label create", "issue list", "issue view", "issue edit"]


def test_changed_drift_updates_the_issue_and_says_so(workspace: Path) -> None:
    old = "<!-- rentagpu-drift stack=prod report=0000000000000000 -->\nold report"
    calls = run_issue(workspace, "drift", open_issue="7", open_body=old)
    assert verbs(calls) == [
        "label create",
        "issue list",
        "issue view",
        "issue edit",
        "issue comment",
    ]
    assert calls[3].startswith("issue edit 7 --body-file body.md")


def test_no_drift_closes_the_open_issue(workspace: Path) -> None:
    calls = run_issue(workspace, "clean", open_issue="7")
    assert verbs(calls) == ["label create", "issue list", "issue close"]
    assert calls[-1].startswith("issue close 7 --comment No drift in stack prod")


def test_no_drift_and_no_issue_does_nothing(workspace: Path) -> None:
    calls = run_issue(workspace, "clean")
    assert verbs(calls) == ["label create", "issue list"]


def test_the_issue_is_found_by_its_stack_marker(workspace: Path) -> None:
    run_issue(workspace, "clean")
    listing = next(
        c
        for c in (workspace / "fake" / "gh.calls").read_text().splitlines()
        if c.startswith("issue list")
    )
    assert "--state open --label drift" in listing
    assert 'contains(\\"<!-- rentagpu-drift stack=prod \\")' not in listing  # no escaping left
    assert 'contains("<!-- rentagpu-drift stack=prod ")' in listing
