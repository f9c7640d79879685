""".pre-commit-config.yaml: local hooks only, each runnable from this checkout, each clean on what is
committed; and the .gitignore lines that keep credentials out.

pre-commit itself is not in the lock files, so each hook is run here the way pre-commit runs it:
its `entry` from the repository root, with the tracked files its filter selects appended (or none,
with `pass_filenames: false`)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflows.support import ROOT

CONFIG = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
HOOKS = {hook["id"]: hook for repo in CONFIG["repos"] for hook in repo["hooks"]}
VENV_BIN = Path(sys.executable).parent


def tracked() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    return [n for n in out.decode().split("\0") if n]


def selected(hook: dict) -> list[str]:
    names = tracked()
    if "files" in hook:
        names = [n for n in names if re.search(hook["files"], n)]
    if {"python", "pyi"} & set(hook.get("types_or", [])):
        names = [n for n in names if n.endswith((".py", ".pyi"))]
    return names


def test_pre_commit_hooks_are_local_and_download_nothing() -> None:
    assert [repo["repo"] for repo in CONFIG["repos"]] == ["local"]
    assert set(HOOKS) == {"scan-secrets", "ruff-check", "ruff-format", "zizmor"}
    for hook in HOOKS.values():
        assert hook["language"] == "system", hook["id"]  # no environment pre-commit would build
        program = shlex.split(hook["entry"])[0]
        assert program == "bash" or program.startswith(".venv/bin/"), hook["id"]
    assert "rev" not in yaml.safe_dump(CONFIG)


def test_pre_commit_secret_scan_hook_scans_the_staged_changes() -> None:
    hook = HOOKS["scan-secrets"]
    assert shlex.split(hook["entry"]) == ["bash", ".ci/scan-secrets", "--staged"]
    assert hook["pass_filenames"] is False and hook["always_run"] is True


@pytest.mark.parametrize("hook_id", ["ruff-check", "ruff-format", "zizmor"])
def test_pre_commit_lint_hooks_pass_on_what_is_committed(hook_id: str) -> None:
    hook = HOOKS[hook_id]
    program, *args = shlex.split(hook["entry"])
    # .venv/bin/X of this checkout is the interpreter's own bin directory in the test run.
    executable = VENV_BIN / program.removeprefix(".venv/bin/")
    files = selected(hook)
    assert files, f"{hook_id} selects no file"
    result = subprocess.run(
        [str(executable), *args, *files], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_hook_selects_every_workflow_and_action() -> None:
    files = selected(HOOKS["zizmor"])
    assert ".github/workflows/audit.yml" in files
    assert ".github/actions/python-venv/action.yml" in files
    assert ".github/dependabot.yml" not in files


@pytest.mark.parametrize(
    "path", [".env", "deploy/.env", "prod.env", ".modal.toml", "x/.modal.toml"]
)
def test_gitignore_keeps_credential_files_out(path: str) -> None:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "--no-index", "-q", path], check=False
    )
    assert result.returncode == 0, f"{path} is not ignored"
