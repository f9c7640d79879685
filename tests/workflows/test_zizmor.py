"""zizmor 1.32.0 (offline) on the workflows: nothing by default; only accepted auditor findings.

The accepted auditor findings are listed with their reason, here and in the README: a new one
fails this test until someone either fixes it or writes down why it is acceptable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.workflows.support import ROOT

# The zizmor installed next to the interpreter running the tests (hash-locked in requirements-dev).
ZIZMOR = Path(sys.executable).parent / "zizmor"

# (audit, file, job) -> why it is accepted.
ACCEPTED_AUDITOR_FINDINGS = {
    ("secrets-outside-env", "preview.yml", "preview"): (
        "dev's read-only repository secrets (Modal, GitHub and Pulumi read tokens) in the PR "
        "preview of dev: an environment would change the OIDC subject from `pull_request`, and its "
        "branch policy would block PR branches. Anyone who can push a branch can read dev's "
        "config through them, dev's Modal deploy token included: accepted for dev only (prod's "
        "read credentials live in `prod-readonly`, main only)"
    ),
    ("secrets-outside-env", "drift.yml", "check-dev"): (
        "the same dev read-only repository secrets; dev's drift role is trusted by "
        "`ref:refs/heads/main`, which an environment would replace"
    ),
}


def zizmor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_zizmor_default_persona_finds_nothing_in_the_workflows() -> None:
    result = zizmor(".github/workflows")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_zizmor_default_persona_finds_nothing_in_the_composite_action_either() -> None:
    result = zizmor(".github")
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_auditor_persona_finds_only_the_accepted_findings() -> None:
    result = zizmor("--persona", "auditor", "--format", "json", ".github")
    findings = json.loads(result.stdout)
    seen = set()
    for finding in findings:
        symbolic = finding["locations"][0]["symbolic"]
        path = symbolic["key"]["Local"]["verbatim_path"].rsplit("/", 1)[-1]
        route = [step.get("Key") for step in symbolic["route"]["route"]]
        job = route[1] if route[:1] == ["jobs"] else None
        seen.add((finding["ident"], path, job))
    assert seen == set(ACCEPTED_AUDITOR_FINDINGS), sorted(seen)
