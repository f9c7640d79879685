"""Stack config, parsed once into frozen typed objects.

`parse_config` is pure: it takes the raw key/value pairs (each flagged secret or not, exactly as
`pulumi config` stores them) and returns a `StackConfig`, or raises one `ConfigError` that lists
every problem at once, each naming its key and what is allowed. The program calls it before it
declares any resource, so bad input never changes anything. Keys, defaults, ranges and rules are
the schema's (`infra.core.config_schema`); this module adds the rules that span several keys.

Secret values are kept in `SecretStr`, whose repr is masked, so a config object can be printed,
logged or put in an exception without leaking a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.core import names
from infra.core.config_schema import (
    ENVIRONMENTS,
    KEY,
    KNOWN_KEYS,
    MAX_REVIEWERS,
    MODAL_ROLES,
    PROJECT,
    SECRET_KEYS,
    Key,
    full_key,
)
from infra.core.errors import ConfigError
from infra.core.secrets import SecretStr
from modal_app import contract


@dataclass(frozen=True)
class RawValue:
    """One config value as Pulumi stores it: always a string (JSON for lists and maps)."""

    value: str
    secret: bool = False


@dataclass(frozen=True)
class GitHubConfig:
    owner: str
    repository: str
    reviewers: tuple[str, ...]
    reviewer_teams: tuple[str, ...]
    deployment_branches: tuple[str, ...]
    required_approvals: int
    owns_repository_settings: bool


@dataclass(frozen=True)
class AwsConfig:
    region: str
    bucket: str
    input_prefix: str
    output_prefix: str
    auth_mode: contract.AuthMode
    owns_account_singletons: bool
    access_key_max_age_days: int
    access_key_serial: int


@dataclass(frozen=True)
class ModalConfig:
    workspace_id: str
    app_name: str
    function_name: str
    restricted: bool
    service_user_roles: tuple[tuple[str, str], ...]
    allow_environment_deletion: bool
    gpus: tuple[str, ...]
    token_rotation_days: int
    monthly_budget_dollars: int | None
    ci_token_serial: int
    ci_token_lifetime_days: int
    # The fallback: a token someone made for CI's deploys; None when the program mints it.
    token_id: SecretStr | None = field(repr=False)
    token_secret: SecretStr | None = field(repr=False)


@dataclass(frozen=True)
class StackConfig:
    stack: str
    environment: str
    github: GitHubConfig
    aws: AwsConfig
    modal: ModalConfig

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


class _Reader:
    """Reads keys through the schema, collecting problems instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, RawValue]) -> None:
        self.raw = raw
        self.problems: list[str] = []
        self.refused: set[str] = set()  # keys already reported; no second message for them

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{full_key(name)}: {message}")

    def plain(self, key: Key) -> RawValue | None:
        raw = self.raw.get(key.full)
        if raw is not None and raw.secret and not key.secret:
            # The program copies these values into resource inputs and plain state, and errors
            # quote them: a value someone chose to encrypt must not end up there. Never echoed.
            self.problem(
                key.name,
                "is stored as a secret, but this key is not one and its value would be copied "
                f"into plain resource inputs; set it with `pulumi config set {key.name} VALUE` "
                "(without --secret)",
            )
            self.refused.add(key.name)
            return None
        return raw

    def string(self, name: str, required: bool = True) -> str:
        key = KEY[name]
        raw = self.plain(key)
        if raw is None or raw.value == "":
            if key.default is not None:
                return key.default
            if required and name not in self.refused:
                self.problem(name, f"is required: {key.description}")
            return ""
        allowed = key.rule(raw.value) if key.rule else None
        if allowed:
            self.problem(name, f"{raw.value!r} is not valid; expected {allowed}")
        return raw.value

    def boolean(self, name: str) -> bool:
        key = KEY[name]
        raw = self.plain(key)
        if raw is None:
            return key.default
        text = raw.value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
        self.problem(name, f"{raw.value!r} is not valid; expected true or false")
        return key.default

    def integer(self, name: str) -> int:
        key = KEY[name]
        raw = self.plain(key)
        if raw is None:
            return key.default
        try:
            number = int(raw.value)
        except ValueError:
            number = None
        if number is None or not key.low <= number <= key.high:  # type: ignore[operator]
            self.problem(
                name, f"{raw.value!r} is not valid; expected a whole number {key.low}-{key.high}"
            )
            return key.default
        return number

    def _json(self, key: Key, kind: type, example: str) -> Any:
        raw = self.plain(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw.value)
        except ValueError:
            value = None
        if not isinstance(value, kind):
            self.problem(
                key.name, f"is not valid; expected a {kind.__name__}, set with e.g. {example}"
            )
            return None
        return value

    def string_list(self, name: str) -> tuple[str, ...]:
        key = KEY[name]
        value = self._json(key, list, f"`pulumi config set --path '{name}[0]' VALUE`")
        if value is None:
            return tuple(key.default)
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"{name}[{index}]", "is not valid; expected a string")
                continue
            allowed = key.rule(item) if key.rule else None
            if allowed:
                self.problem(f"{name}[{index}]", f"{item!r} is not valid; expected {allowed}")
            items.append(item)
        if len(set(items)) != len(items):
            self.problem(name, "lists the same entry twice")
        return tuple(items)

    def string_map(self, name: str, choices: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        key = KEY[name]
        value = self._json(key, dict, f"`pulumi config set --path '{name}.NAME' VALUE`")
        if value is None:
            return tuple(key.default)
        pairs: list[tuple[str, str]] = []
        for entry, role in sorted(value.items()):
            allowed = key.rule(entry) if key.rule else None
            if allowed:
                self.problem(f"{name}.{entry}", f"is not valid; expected {allowed}")
            if role not in choices:
                self.problem(
                    f"{name}.{entry}",
                    f"{role!r} is not valid; expected one of: {', '.join(choices)}",
                )
            pairs.append((entry, str(role)))
        return tuple(pairs)

    def secret(self, name: str, required: bool = True) -> SecretStr | None:
        raw = self.raw.get(full_key(name))
        if raw is None or raw.value == "":
            if required:
                self.problem(
                    name,
                    f"is required and must be a secret: `pulumi config set --secret {name} ...`",
                )
            return None
        if not raw.secret:
            # Never echo the value: it is a credential that is now sitting in plain text.
            self.problem(
                name,
                "is stored in plain text but must be a secret: remove it from the stack file, "
                f"run `pulumi config set --secret {name} ...`, and rotate the exposed value",
            )
            return None
        return SecretStr(raw.value)


def _environment(r: _Reader, stack: str) -> tuple[str, bool]:
    """The environment, and whether prod-only rules apply (only to a consistent prod)."""
    environment = r.string("environment")
    if environment in ENVIRONMENTS and stack != environment:
        r.problem(
            "environment",
            f"is {environment!r} but the stack is {stack!r}; name each stack after its "
            "environment (dev or prod) so state, roles and secrets can never be crossed",
        )
    elif environment == "" and stack not in ENVIRONMENTS:
        r.problems.append(f"stack: {stack!r} is not a known stack; expected one of: dev, prod")
    return environment, environment == "prod" and stack == environment


def _github(r: _Reader, is_prod: bool) -> GitHubConfig:
    owner = r.string("githubOwner")
    repository = r.string("githubRepository")
    reviewers = r.string_list("reviewers")
    teams = r.string_list("reviewerTeams")
    branches = r.string_list("deploymentBranches")
    approvals = r.integer("requiredApprovals")
    owns_repository = r.boolean("ownsRepositorySettings")
    if is_prod:
        if not reviewers and not teams:
            r.problem(
                "reviewers",
                "prod needs at least one required reviewer: set reviewers (GitHub logins) "
                "and/or reviewerTeams (team slugs)",
            )
        elif len(reviewers) == 1 and not teams:
            r.problem(
                "reviewers",
                f"prod has a single reviewer ({reviewers[0]}) and prevent_self_review is on, so "
                "that person could never approve a deploy they start; add a second reviewer or "
                "a reviewer team",
            )
        if branches != ("main",):
            r.problem(
                "deploymentBranches",
                "prod deploys from main only; remove this key from Pulumi.prod.yaml",
            )
    if len(reviewers) + len(teams) > MAX_REVIEWERS:
        r.problem(
            "reviewers",
            f"{len(reviewers) + len(teams)} reviewers and teams; GitHub allows at most "
            f"{MAX_REVIEWERS} per environment",
        )
    return GitHubConfig(
        owner=owner,
        repository=repository,
        reviewers=reviewers,
        reviewer_teams=teams,
        deployment_branches=branches,
        required_approvals=approvals,
        owns_repository_settings=owns_repository,
    )


def _aws(r: _Reader) -> AwsConfig:
    region = r.string("aws:region")
    bucket = r.string("bucket")
    input_prefix = r.string("inputPrefix")
    output_prefix = r.string("outputPrefix")
    if (
        contract.prefix_problem(input_prefix) is None
        and contract.prefix_problem(output_prefix) is None
        and contract.prefixes_overlap(input_prefix, output_prefix)
    ):
        r.problem(
            "outputPrefix",
            f"{output_prefix!r} overlaps inputPrefix {input_prefix!r}; use two separate prefixes "
            "so the app can never overwrite its own inputs",
        )
    auth_mode = r.string("awsAuth")
    owns_account = r.boolean("ownsAccountSingletons")
    max_age = r.integer("accessKeyMaxAgeDays")
    serial = r.integer("accessKeySerial")
    return AwsConfig(
        region=region,
        bucket=bucket,
        input_prefix=input_prefix,
        output_prefix=output_prefix,
        auth_mode=auth_mode,  # type: ignore[arg-type]
        owns_account_singletons=owns_account,
        access_key_max_age_days=max_age,
        access_key_serial=serial,
    )


def _budget(r: _Reader, is_prod: bool) -> int | None:
    """The environment's spend cap: prod must have one (its GPUs run whatever its callers send,
    see the README); dev may."""
    name = "monthlyBudgetDollars"
    raw = r.raw.get(full_key(name))
    if raw is not None and raw.value != "":  # "" is unset, as a declared empty default merges
        return r.integer(name)  # a bad value is reported there, naming the range
    if is_prod:
        r.problem(
            name,
            "prod needs a spend cap for its Modal environment: set it in whole dollars per "
            f"billing cycle, e.g. `pulumi config set {name} 500 --stack prod`",
        )
    return None


_FALLBACK_KEYS = ("modalTokenId", "modalTokenSecret")


def _modal(r: _Reader, is_prod: bool) -> ModalConfig:
    workspace_id = r.string("modalWorkspaceId")
    app_name = r.string("modalAppName")
    roles = r.string_map("modalServiceUserRoles", MODAL_ROLES)
    allow_deletion = r.boolean("allowModalEnvironmentDeletion")
    budget = _budget(r, is_prod)
    gpus = tuple(contract.normalise_gpu(g) or g for g in r.string_list("gpus"))
    if not gpus:
        r.problem("gpus", "is empty; list at least one GPU type")
    elif len(set(gpus)) != len(gpus):
        r.problem("gpus", "lists the same GPU twice (GPU names are not case-sensitive)")
    rotation_days = r.integer("tokenRotationDays")
    token_id = r.secret("modalTokenId", required=False)
    token_secret = r.secret("modalTokenSecret", required=False)
    given = [bool(getattr(r.raw.get(full_key(k)), "value", "")) for k in _FALLBACK_KEYS]
    if given[0] != given[1]:
        r.problem(
            "modalTokenSecret",
            "modalTokenId and modalTokenSecret go together: set both, or neither to let the "
            "program mint CI's token",
        )
    return ModalConfig(
        workspace_id=workspace_id,
        app_name=app_name,
        function_name=contract.FUNCTION_NAME,
        restricted=is_prod,
        service_user_roles=roles,
        allow_environment_deletion=allow_deletion,
        gpus=gpus,
        token_rotation_days=rotation_days,
        monthly_budget_dollars=budget,
        ci_token_serial=r.integer("ciTokenSerial"),
        ci_token_lifetime_days=r.integer("ciTokenLifetimeDays"),
        token_id=token_id,
        token_secret=token_secret,
    )


def parse_config(stack: str, raw: Mapping[str, RawValue]) -> StackConfig:
    """Parse and check a stack's raw config; raise `ConfigError` listing every problem."""
    r = _Reader(raw)
    for key in sorted(raw):
        if key.startswith(f"{PROJECT}:") and key not in KNOWN_KEYS:
            known = ", ".join(sorted(k.name for k in KEY.values() if ":" not in k.name))
            r.problems.append(f"{key}: is not a known key; known keys: {known}")
    environment, is_prod = _environment(r, stack)
    github = _github(r, is_prod)
    aws = _aws(r)
    modal = _modal(r, is_prod)
    if r.problems:
        raise ConfigError(stack, r.problems)
    return StackConfig(stack=stack, environment=environment, github=github, aws=aws, modal=modal)


def expected_service_users(cfg: StackConfig) -> dict[str, str]:
    """Every service user the stack gives a role in its environment, with that role: those
    `modalServiceUserRoles` names, and CI's minted ones (`ModalCiToken`, serial-numbered). An
    adopted deploy token's service user is named by the token, so it is not known here."""
    roles = dict(cfg.modal.service_user_roles)
    for purpose, role in names.CI_TOKEN_ROLES.items():
        if purpose == "deploy" and cfg.modal.token_id is not None:
            continue
        roles[names.ci_service_user(cfg.environment, purpose, cfg.modal.ci_token_serial)] = role
    return roles


def config_value(raw: Mapping[str, RawValue], name: str) -> str | None:
    """One raw value by key name, or the key's default, without parsing the whole config (for
    tools that must work on a config that does not parse)."""
    found = raw.get(full_key(name))
    if found is not None and found.value != "":
        return found.value
    default = KEY[name].default if name in KEY else None
    return None if default is None else str(default)


__all__ = [
    "SECRET_KEYS",
    "AwsConfig",
    "GitHubConfig",
    "ModalConfig",
    "RawValue",
    "StackConfig",
    "config_value",
    "parse_config",
]
