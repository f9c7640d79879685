"""Every stack config key: its type, meaning, default, range, and the rule a value must follow.

This is the only home of keys and defaults. The parser (`infra.core.config`) reads through it, the
README's config table and `Pulumi.yaml`'s `config:` block are checked against it, and tools that
need a default (the runbook, the policy pack) take it from here.

A rule returns None when a value is fine, else the text of what is allowed; the parser adds the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from modal_app import contract

PROJECT = "rentagpu"
ENVIRONMENTS = ("dev", "prod")
MODAL_ROLES = ("contributor", "viewer", "no-access")
MAX_REVIEWERS = 6  # GitHub's limit for users + teams on one environment
# A spend cap per environment (Modal's EnvironmentSetBudget), in whole dollars per billing cycle.
MIN_BUDGET_DOLLARS = 1
MAX_BUDGET_DOLLARS = 1_000_000
# Config the program never reads: the runbook keeps a token there while a rotation is under way.
ROTATION_NAMESPACE = f"{PROJECT}-rotation"

Kind = Literal["string", "integer", "boolean", "array", "object"]
Rule = Callable[[str], str | None]


# Rules.

_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_TEAM_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_BRANCH_PATTERN = re.compile(r"^[A-Za-z0-9._/*-]{1,255}$")
_MODAL_WORKSPACE_ID = re.compile(r"^ac-[A-Za-z0-9]{8,64}$")
_MODAL_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def github_login(value: str) -> str | None:
    if _GITHUB_LOGIN.fullmatch(value):
        return None
    return "a GitHub login: 1-39 letters, digits or single hyphens, not starting or ending with '-'"


def github_repository(value: str) -> str | None:
    if _GITHUB_REPO.fullmatch(value) and value not in (".", "..") and not value.endswith(".git"):
        return None
    return "a repository name: 1-100 letters, digits, '.', '-', '_' (without the owner or '.git')"


def team_slug(value: str) -> str | None:
    if _TEAM_SLUG.fullmatch(value):
        return None
    return "a team slug: lowercase letters, digits, '-', '_' (the slug, not the display name)"


def branch_pattern(value: str) -> str | None:
    if _BRANCH_PATTERN.fullmatch(value) and ".." not in value and not value.startswith("/"):
        return None
    return "a branch name or fnmatch pattern such as 'main' or 'release/*'"


def modal_workspace_id(value: str) -> str | None:
    if _MODAL_WORKSPACE_ID.fullmatch(value):
        return None
    return "a Modal workspace id such as 'ac-1a2b3c4d5e6f' (see `modal token info`)"


def modal_user(value: str) -> str | None:
    if _MODAL_USER.fullmatch(value):
        return None
    return "a Modal service user name: letters, digits, '.', '-', '_'"


def one_of(choices: tuple[str, ...]) -> Rule:
    listed = ", ".join(choices)
    return lambda value: None if value in choices else f"one of: {listed}"


def gpu(value: str) -> str | None:
    return None if contract.normalise_gpu(value) else f"a Modal GPU type: {contract.GPU_EXPECTED}"


# Keys.


@dataclass(frozen=True)
class Key:
    """One config key. `name` is short for this project's keys (`bucket`), full for others."""

    name: str
    kind: Kind
    description: str
    default: Any = None
    secret: bool = False
    rule: Rule | None = None
    low: int | None = None  # integers: the allowed range
    high: int | None = None
    # No default, yet a stack may leave it unset (the program decides per stack): Pulumi.yaml
    # declares it untyped with an empty default, since the CLI requires every key without one.
    optional: bool = False

    @property
    def full(self) -> str:
        return full_key(self.name)


def full_key(name: str) -> str:
    """`bucket` -> `rentagpu:bucket`; a key with a namespace (`aws:region`) is kept as it is."""
    return name if ":" in name else f"{PROJECT}:{name}"


KEYS: tuple[Key, ...] = (
    Key(
        "environment",
        "string",
        "`dev` or `prod`; must equal the stack name",
        rule=one_of(ENVIRONMENTS),
    ),
    Key(
        "githubOwner",
        "string",
        "GitHub user or organization that owns the repository (the stack's GitHub provider is "
        "bound to it)",
        rule=github_login,
    ),
    Key(
        "githubRepository",
        "string",
        "repository name, without the owner",
        rule=github_repository,
    ),
    Key(
        "reviewers",
        "array",
        "prod: GitHub logins that must approve deploys (resolved to numeric ids)",
        default=(),
        rule=github_login,
    ),
    Key(
        "reviewerTeams",
        "array",
        "prod: team slugs that must approve deploys (the team needs write access, or GitHub "
        "ignores it)",
        default=(),
        rule=team_slug,
    ),
    Key(
        "deploymentBranches",
        "array",
        "dev only: branch patterns allowed to deploy (default `[main]`); prod is always `main` only",
        default=("main",),
        rule=branch_pattern,
    ),
    Key(
        "requiredApprovals",
        "integer",
        "approvals a pull request into `main` needs, code owners' included (1-6, default 1; owner "
        "stack): with none, whoever can push a branch could merge it and deploy dev",
        default=1,
        low=1,
        high=6,
    ),
    Key(
        "ownsRepositorySettings",
        "boolean",
        "`true` in exactly one stack: it owns `MODAL_APP_NAME` and the ruleset on `main` (prod "
        "here)",
        default=False,
    ),
    Key(
        "ownsAccountSingletons",
        "boolean",
        "`true` in the stack that creates the account's two OIDC providers; the others look them "
        "up (prod here; set it in both if dev and prod use different AWS accounts)",
        default=False,
    ),
    Key(
        "modalWorkspaceId",
        "string",
        "Modal workspace id (`ac-...`, see `modal token info`), pinned in the runtime role's trust",
        rule=modal_workspace_id,
    ),
    Key(
        "modalAppName",
        "string",
        "Modal app name (default `rentagpu-executor`; at most 64 letters, digits, `-`, `.`, `_`, "
        "or Modal issues no identity token)",
        default=contract.DEFAULT_APP_NAME,
        rule=contract.app_name_problem,
    ),
    Key(
        "modalServiceUserRoles",
        "object",
        "map of Modal service user to role in this environment (`contributor`, `viewer`, "
        "`no-access`)",
        default=(),
        rule=modal_user,
    ),
    Key(
        "allowModalEnvironmentDeletion",
        "boolean",
        "let `pulumi destroy` delete a Modal environment that still holds apps or secrets "
        "(default false)",
        default=False,
    ),
    Key(
        "monthlyBudgetDollars",
        "integer",
        "spend cap of the stack's Modal environment per billing cycle, in whole US dollars "
        f"({MIN_BUDGET_DOLLARS}-{MAX_BUDGET_DOLLARS:,}); required in prod, optional in dev (no cap "
        "when unset); Modal stops the environment's work when it is reached",
        low=MIN_BUDGET_DOLLARS,
        high=MAX_BUDGET_DOLLARS,
        optional=True,
    ),
    Key(
        "gpus",
        "array",
        "GPU types for `run_gpu_job`, first choice first (default `[H100, A100-80GB]`)",
        default=contract.DEFAULT_GPUS,
        rule=gpu,
    ),
    Key(
        "tokenRotationDays",
        "integer",
        "days a Modal token or a GitHub secret holding one may live before `python -m infra audit` "
        "(and `doctor`, for a personal token) reports it due for rotation (default 90)",
        default=90,
        low=1,
        high=365,
    ),
    Key(
        "ciTokenSerial",
        "integer",
        "bump by one to replace CI's Modal service users and tokens (rotation: the new tokens are "
        "in GitHub before the old service users are deleted)",
        default=1,
        low=1,
        high=1_000_000,
    ),
    Key(
        "ciTokenLifetimeDays",
        "integer",
        "days CI's minted Modal tokens live; a full `pulumi up` in the last third replaces them "
        "(default 90)",
        default=90,
        low=7,
        high=365,
    ),
    Key(
        "modalTokenId",
        "string",
        "fallback: the id of a service-user token you made for CI's deploys (unset, the program "
        "mints one); it then sits in stack config, which every reader of the stack can decrypt",
        secret=True,
        optional=True,
    ),
    Key(
        "modalTokenSecret",
        "string",
        "fallback: goes with `modalTokenId`",
        secret=True,
        optional=True,
    ),
    Key(
        "bucket",
        "string",
        "S3 bucket the app reads inputs from and writes outputs to (created by the stack)",
        rule=contract.bucket_problem,
    ),
    Key(
        "inputPrefix",
        "string",
        "key prefix the app may read (default `inputs/`)",
        default=contract.DEFAULT_INPUT_PREFIX,
        rule=contract.prefix_problem,
    ),
    Key(
        "outputPrefix",
        "string",
        "key prefix the app may write (default `outputs/`; must not overlap the input prefix)",
        default=contract.DEFAULT_OUTPUT_PREFIX,
        rule=contract.prefix_problem,
    ),
    Key(
        "awsAuth",
        "string",
        "`oidc` (default: no long-lived key exists) or `access-key` for workspaces without OIDC",
        default=contract.DEFAULT_AUTH_MODE,
        rule=one_of(contract.AUTH_MODES),
    ),
    Key(
        "accessKeyMaxAgeDays",
        "integer",
        "access-key mode: the policy pack warns about keys older than this (default 90)",
        default=90,
        low=1,
        high=365,
    ),
    Key(
        "accessKeySerial",
        "integer",
        "access-key mode: bump by one to rotate the runtime key (see Runbook)",
        default=1,
        low=1,
        high=1_000_000,
    ),
    Key(
        "aws:region",
        "string",
        "AWS region of the bucket and the provider",
        rule=contract.region_problem,
    ),
)

KEY: dict[str, Key] = {key.name: key for key in KEYS}
KNOWN_KEYS = frozenset(key.full for key in KEYS)
SECRET_KEYS = frozenset(key.name for key in KEYS if key.secret)


def default(name: str) -> Any:
    """The default of a key, as the parser applies it."""
    return KEY[name].default
