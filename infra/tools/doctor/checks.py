"""The laptop checks that need no network: the token file, the default environment, automation's
MODAL_ENVIRONMENT, the repository's .gitignore and its pre-commit hook."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.tools.doctor.profile import ModalProfile

# Variables CI systems set (GitHub Actions, GitLab, Buildkite, CircleCI, Jenkins, Azure Pipelines,
# TeamCity, Bitbucket); `CI` is set by most of them.
AUTOMATION_VARIABLES = (
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "JENKINS_URL",
    "TF_BUILD",
    "TEAMCITY_VERSION",
    "BITBUCKET_BUILD_NUMBER",
)
IGNORED_CREDENTIAL_FILES = (".env", "local.env", ".modal.toml")
# pre-commit writes this id into every hook script it installs and recognises its hooks by it
# (pre_commit/commands/install_uninstall.py `CURRENT_HASH`; pre_commit/resources/hook-tmpl).
PRE_COMMIT_HOOK_ID = "138fd403232d2ddd5efb44317e38bf03"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def automation(environ: Mapping[str, str]) -> str | None:
    """The variable that says a CI system runs this, or None on a person's machine."""
    for name in AUTOMATION_VARIABLES:
        if environ.get(name, "").strip().lower() not in ("", "0", "false"):
            return name
    return None


def git_work_tree_of(path: Path) -> Path | None:
    """The git work tree holding `path`, found by its `.git` (a directory or, in a worktree or
    submodule, a file), or None."""
    for folder in (path.parent, *path.parent.parents):
        if (folder / ".git").exists():
            return folder
    return None


def token_file(profile: ModalProfile, home: Path) -> list[Check]:
    if not profile.exists:
        where = "the environment" if profile.token_from_environment else "nowhere"
        return [Check("token file", True, f"no {profile.path}; the token comes from {where}")]
    path = profile.path
    checks = []
    tree = git_work_tree_of(path.resolve())
    safe = home / ".modal.toml"
    if tree is not None:
        checks.append(
            Check(
                "token file",
                False,
                f"{path} is inside the git work tree {tree}: one `git add -A` from being "
                "committed, and copied with every clone of the directory",
                f"mv {path} {safe} && chmod 600 {safe} && unset MODAL_CONFIG_PATH",
            )
        )
    else:
        checks.append(Check("token file", True, f"{path} is outside any git work tree"))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        checks.append(
            Check(
                "token file mode",
                False,
                f"{path} has mode {mode:04o}: other users of this machine can read the token",
                f"chmod 600 {path}",
            )
        )
    else:
        checks.append(Check("token file mode", True, f"{path} has mode {mode:04o}"))
    if profile.problem:
        checks.append(
            Check("token file", False, profile.problem, f"modal token new --profile {profile.name}")
        )
    return checks


def default_environment(profile: ModalProfile, environ: Mapping[str, str]) -> list[Check]:
    checks = []
    ci = automation(environ)
    if ci is not None:
        if profile.environment_from_variable:
            checks.append(
                Check(
                    "MODAL_ENVIRONMENT", True, f"automation ({ci}) sets it: {profile.environment}"
                )
            )
        else:
            checks.append(
                Check(
                    "MODAL_ENVIRONMENT",
                    False,
                    f"automation ({ci} is set) runs without MODAL_ENVIRONMENT, so every `modal` "
                    "command goes to whatever the profile or the workspace defaults to",
                    "set MODAL_ENVIRONMENT=dev (or the stack's environment) in the job's env",
                )
            )
        return checks
    if profile.environment == "dev":
        checks.append(
            Check("default environment", True, "the profile's default environment is dev")
        )
    else:
        goes = (
            f"is {profile.environment}: a `modal` command without `-e` goes there"
            if profile.environment
            else "is not set: a `modal` command without `-e` goes to the workspace's default"
        )
        checks.append(
            Check(
                "default environment",
                False,
                f"the profile's default environment {goes}; personal tokens are for dev",
                "modal config set-environment dev",
            )
        )
    return checks


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=30
    )


def gitignore(repo: Path) -> list[Check]:
    try:
        missing = [
            name
            for name in IGNORED_CREDENTIAL_FILES
            if _git(repo, "check-ignore", "--no-index", "-q", name).returncode != 0
        ]
    except FileNotFoundError:
        return [Check(".gitignore", False, "git is not installed", "install git")]
    if not missing:
        return [Check(".gitignore", True, "ignores .env, *.env and .modal.toml")]
    lines = "\\n".join(p for p in (".env", "*.env", ".modal.toml") if p in _patterns(missing))
    return [
        Check(
            ".gitignore",
            False,
            f"{repo} does not ignore {', '.join(missing)}: a credential file there could be "
            "committed",
            f"printf '{lines}\\n' >> {repo / '.gitignore'}",
        )
    ]


def _patterns(missing: list[str]) -> set[str]:
    wanted = {".env": ".env", "local.env": "*.env", ".modal.toml": ".modal.toml"}
    return {wanted[name] for name in missing}


def pre_commit(repo: Path) -> list[Check]:
    try:
        answer = _git(repo, "rev-parse", "--git-path", "hooks")
    except FileNotFoundError:
        return [Check("pre-commit", False, "git is not installed", "install git")]
    if answer.returncode != 0:
        return [
            Check("pre-commit", False, f"{repo} is not a git repository", f"git -C {repo} init")
        ]
    hook = Path(answer.stdout.strip())
    hook = (hook if hook.is_absolute() else repo / hook) / "pre-commit"
    fix = f"cd {repo} && .venv/bin/pre-commit install"
    if not hook.is_file():
        return [Check("pre-commit", False, "the pre-commit hooks are not installed", fix)]
    if PRE_COMMIT_HOOK_ID not in hook.read_text(errors="replace"):
        return [Check("pre-commit", False, f"{hook} was not installed by pre-commit", fix)]
    return [Check("pre-commit", True, f"hooks installed ({hook})")]
