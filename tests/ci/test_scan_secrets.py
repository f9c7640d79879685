"""`.ci/scan-secrets`: clean on this repository; catches planted keys in a tree and in history.

Planted values are generated here at run time, so no file in the repository ever holds one.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflows.support import ROOT

SCANNER = ROOT / ".ci" / "scan-secrets"
# The detect-secrets installed next to the interpreter running the tests.
DETECT_SECRETS = str(Path(sys.executable).parent / "detect-secrets")
UPPER = string.ascii_uppercase
ALNUM = string.ascii_letters + string.digits
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_SYSTEM": "/dev/null",
}


def fake_aws_key() -> str:
    return "AKIA" + "".join(secrets.choice(UPPER) for _ in range(16))


def fake_modal_secret() -> str:
    return "as-" + "".join(secrets.choice(ALNUM) for _ in range(22))


def scan(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCANNER), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(path),
            "DETECT_SECRETS": DETECT_SECRETS,
            **GIT_ENV,
        },
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", **GIT_ENV},
    )


def copy_of_the_tree(dest: Path) -> Path:
    """The repository's tracked files, without .git: scanned as a plain directory."""
    listed = (
        subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_the_repository_tree_and_history_are_clean() -> None:
    result = scan(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing found in the tree" in result.stdout


def test_planted_aws_key_and_modal_token_are_caught_in_a_copy_of_the_tree(
    tmp_path: Path,
) -> None:
    tree = copy_of_the_tree(tmp_path / "tree")
    aws_key, modal_secret = fake_aws_key(), fake_modal_secret()
    # Ordinary places, no "secret" keyword nearby: the detectors must know the formats.
    (tree / "infra" / "leftover.py").write_text(f'BACKUP_ID = "{aws_key}"\n')
    (tree / "modal_app" / "notes.yaml").write_text(f"modal:\n  profile: {modal_secret}\n")

    result = scan(tree)

    assert result.returncode == 1
    assert "infra/leftover.py:1: AWS Access Key" in result.stdout
    assert "modal_app/notes.yaml:2: Modal Token Secret" in result.stdout
    assert "finding(s) in the tree" in result.stderr
    # Findings name where, never what.
    assert aws_key not in result.stdout + result.stderr
    assert modal_secret not in result.stdout + result.stderr


def test_a_key_deleted_in_a_later_commit_is_still_caught_in_history(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    (repo / "deploy.env").write_text(f"MODAL_PROFILE_TOKEN={fake_modal_secret()}\n")
    (repo / "ci.sh").write_text(f"export KEY={fake_aws_key()}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "oops")
    (repo / "deploy.env").unlink()
    (repo / "ci.sh").write_text("export KEY=from-the-environment\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "remove the keys")

    result = scan(repo)

    assert result.returncode == 1
    assert "deploy.env:1: Modal Token Secret" in result.stdout
    assert "ci.sh:1: AWS Access Key" in result.stdout
    assert all(line.startswith("history ") for line in result.stdout.splitlines())


def test_pulumi_secure_ciphertext_is_not_a_finding(tmp_path: Path) -> None:
    ciphertext = base64.b64encode(secrets.token_bytes(48)).decode()
    (tmp_path / "Pulumi.dev.yaml").write_text(
        f"config:\n  rentagpu:modalTokenSecret:\n    secure: v1:{ciphertext[:16]}:{ciphertext}\n"
    )
    result = scan(tmp_path)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("argv", [["--nope"], ["a", "b"]])
def test_bad_arguments_exit_2(argv: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCANNER), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr


def scan_staged(repo: Path) -> subprocess.CompletedProcess[str]:
    """What the pre-commit hook runs (.pre-commit-config.yaml: `.ci/scan-secrets --staged`)."""
    return subprocess.run(
        ["bash", str(SCANNER), "--staged", str(repo)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(repo),
            "DETECT_SECRETS": DETECT_SECRETS,
            **GIT_ENV,
        },
    )


def test_staged_mode_scans_what_is_about_to_be_committed_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    old_key = fake_aws_key()
    (repo / "old.sh").write_text(f"export KEY={old_key}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "an old key, already in history")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "README.md")
    assert scan_staged(repo).returncode == 0  # history and committed files are CI's business

    modal_secret = fake_modal_secret()
    (repo / "profile.toml").write_text(f"[default]\ntoken_secret = '{modal_secret}'\n")
    assert scan_staged(repo).returncode == 0  # in the work tree, not staged: not this commit
    git(repo, "add", "profile.toml")
    result = scan_staged(repo)
    assert result.returncode == 1
    assert "staged profile.toml:2: Modal Token Secret" in result.stdout.splitlines()
    assert "finding(s) in the staged changes" in result.stderr
    assert modal_secret not in result.stdout + result.stderr

    # The index is what counts: cleaning the work tree without staging the fix still fails.
    (repo / "profile.toml").write_text("[default]\n")
    assert scan_staged(repo).returncode == 1


def test_staged_mode_needs_a_git_work_tree(tmp_path: Path) -> None:
    result = scan_staged(tmp_path)
    assert result.returncode == 2 and "--staged needs a git work tree" in result.stderr
