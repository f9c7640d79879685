"""Reading the workflows as data, and running one of their `run:` scripts locally."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
# Recorded engine JSON, shared with the report tests (tests/tools/report/).
FIXTURES = ROOT / "tests" / "tools" / "report" / "fixtures"
WORKFLOW_NAMES = ("ci", "preview", "deploy", "drift", "audit")


def load_workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def action_files() -> list[Path]:
    return sorted(ACTIONS.rglob("action.yml"))


def all_steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(file, job, step) for every step of every workflow and composite action."""
    for path in workflow_files():
        document = load_workflow(path.stem)
        for job_id, job in document["jobs"].items():
            for step in job.get("steps", []):
                yield path.name, job_id, step
    for path in action_files():
        document = yaml.safe_load(path.read_text())
        for step in document["runs"]["steps"]:
            yield str(path.relative_to(ROOT)), "composite", step


def step_named(job: dict[str, Any], prefix: str) -> dict[str, Any]:
    matches = [s for s in job["steps"] if s.get("name", "").startswith(prefix)]
    assert len(matches) == 1, f"want one step named {prefix!r}, found {len(matches)}"
    return matches[0]


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    matches = [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]
    assert len(matches) == 1, f"want one step using {action}, found {len(matches)}"
    return matches[0]


def run_script(
    script: str, cwd: Path, env: dict[str, str], path_prepend: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a step's script the way GitHub does (`bash -e`), with only the given environment."""
    path = os.environ.get("PATH", "")
    if path_prepend is not None:
        path = f"{path_prepend}:{path}"
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={"PATH": path, "HOME": str(cwd), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# The `gh` the issue jobs call, faked: records each call, answers `issue list` with the number in
# FAKE_DIR/open_issue (if any), `issue view` with FAKE_DIR/open_body.
FAKE_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_DIR/gh.calls"
case "$1 $2" in
  "issue list") cat "$FAKE_DIR/open_issue" 2>/dev/null || true ;;
  "issue view") cat "$FAKE_DIR/open_body" ;;
  "issue create") echo "https://github.com/acme-ml/rentagpu/issues/12" ;;
esac
"""


def make_executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_issue_script(
    workspace: Path, workflow: str, open_issue: str | None, open_body: str
) -> list[str]:
    """Run `workflow`'s "Open, update or close" step against the fake `gh` in WORKSPACE/fake,
    with an open issue or none; returns the gh calls it made."""
    fake = workspace / "fake"
    if open_issue:
        (fake / "open_issue").write_text(open_issue + "\n")
    (fake / "open_body").write_text(open_body)
    script = step_named(load_workflow(workflow)["jobs"]["issue"], "Open, update or close")["run"]
    result = run_script(
        script,
        workspace,
        {
            "STACK": "prod",
            "GH_TOKEN": "test-token",
            "GH_REPO": "acme-ml/rentagpu",
            "RUN_URL": "https://github.com/acme-ml/rentagpu/actions/runs/1",
            "FAKE_DIR": str(fake),
        },
        path_prepend=fake,
    )
    assert result.returncode == 0, result.stderr
    calls = fake / "gh.calls"
    return calls.read_text().splitlines() if calls.exists() else []


def verbs(calls: list[str]) -> list[str]:
    return [" ".join(c.split()[:2]) for c in calls]
