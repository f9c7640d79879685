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
    ("secrets-outside-env", "preview.yml", "preview-dev"): (
        "the PR previews read their stack's read-only repository secrets (a Pulumi token that reads "
        "one stack, the read-only GitHub token): an environment would change the OIDC subject "
        "from `pull_request`, and its branch policy would block PR branches. What they reach is "
        "checked by `python -m infra access`: decrypting a stack's state yields nothing that "
        "writes (CI's Modal tokens are sealed for GitHub), and no Modal token is handed out"
    ),
    ("secrets-outside-env", "preview.yml", "preview-prod"): (
        "the same, for prod: its Pulumi read token and the read-only GitHub token"
    ),
    ("secrets-outside-env", "drift.yml", "check-dev"): (
        "dev's read-only repository secrets (and the read-only GitHub token); dev's drift role is "
        "trusted by `ref:refs/heads/main`, which an environment would replace"
    ),
    ("secrets-outside-env", "audit.yml", "audit-dev"): (
        "dev's audit reads dev with dev's own read-only repository secrets (a viewer token of dev, "
        "the read-only GitHub token); prod's read token, in `prod-readonly`, reaches nothing of dev"
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
