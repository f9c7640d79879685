"""`python -m infra doctor`: is this laptop set up the way the guide's §1 asks?

Checks, each with the command that fixes a problem:
  - the active Modal profile's token is a person's, not a service user's (Modal's TokenInfoGet);
  - its default environment is dev, and it cannot change prod (prod restricted, no contributor
    role there, no workspace-manager account);
  - its age against the rotation period (tokenRotationDays of Pulumi.dev.yaml, default 90);
  - the token file (~/.modal.toml or MODAL_CONFIG_PATH) is outside any git work tree, mode 0600;
  - where automation runs (CI, GITHUB_ACTIONS, ... set), MODAL_ENVIRONMENT is set explicitly;
  - this repository's .gitignore covers .env, *.env and .modal.toml;
  - the pre-commit hooks are installed (`.venv/bin/pre-commit install`).

Only reads: the profile file, the repository, and Modal's read-only RPCs (`--offline` skips
those). The token is never printed; its id only masked (`ak-…1a2b`). The exit code is the number
of problems (0: all good).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from infra.tools.command import add_command

SUMMARY = "check this laptop's Modal token, token file, .gitignore and pre-commit hooks"
MAX_EXIT = 100


def rotation_days(repo: Path) -> int:
    from infra.core.config_schema import default
    from infra.core.config_sources import config_from_stack_file
    from infra.core.errors import ConfigError

    try:
        raw = config_from_stack_file(repo / "Pulumi.dev.yaml")
    except ConfigError:
        return int(default("tokenRotationDays"))
    found = raw.get("rentagpu:tokenRotationDays")
    try:
        return int(found.value) if found else int(default("tokenRotationDays"))
    except ValueError:
        return int(default("tokenRotationDays"))


def diagnose(home: Path, repo: Path, environ: Mapping[str, str], *, offline: bool = False):
    from infra.tools.doctor import checks
    from infra.tools.doctor.modal_checks import modal_checks
    from infra.tools.doctor.profile import read_profile

    profile = read_profile(home, environ)
    found = [
        *checks.token_file(profile, home),
        *checks.default_environment(profile, environ),
        *checks.gitignore(repo),
        *checks.pre_commit(repo),
    ]
    if offline:
        found.append(checks.Check("Modal token", True, "not asked (--offline)"))
    else:
        person = checks.automation(environ) is None
        found += modal_checks(profile, rotation_days(repo), person=person)
    return found


def render(found) -> str:
    problems = [c for c in found if not c.ok]
    lines = [f"rentagpu doctor: {len(found)} checks, {len(problems)} problems", ""]
    for check in found:
        lines.append(f"{'ok     ' if check.ok else 'PROBLEM'}  {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"         fix: {check.fix}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from infra.tools.runbook.driver import PROJECT_DIR

    repo = Path(args.repo).resolve() if args.repo else PROJECT_DIR
    found = diagnose(Path.home(), repo, os.environ, offline=args.offline)
    sys.stdout.write(render(found))
    return min(sum(not c.ok for c in found), MAX_EXIT)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "doctor", SUMMARY, __doc__)
    parser.add_argument(
        "--repo", help="the repository to check (default: this one, where infra/ lives)"
    )
    parser.add_argument(
        "--offline", action="store_true", help="skip the checks that ask Modal about the token"
    )
    parser.set_defaults(func=run)
