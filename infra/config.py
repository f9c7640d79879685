"""Stack config, parsed once into frozen typed objects.

`parse_config` is pure: it takes the raw key/value pairs (each flagged secret or not, exactly as
`pulumi config` stores them) and returns a `StackConfig`, or raises one `ConfigError` that lists
every problem at once, each naming its key and what is allowed. The program calls it before it
declares any resource, so bad input never changes anything.

Secret values are kept in `SecretStr`, whose repr is masked, so a config object can be printed,
logged or put in an exception without leaking a token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from infra.errors import ConfigError
from modal_app import options, settings

PROJECT = "rentagpu"
ENVIRONMENTS = ("dev", "prod")
FUNCTION_NAME = "run_gpu_job"
DEFAULT_APP_NAME = options.DEFAULT_APP_NAME
MODAL_ROLES = ("contributor", "viewer", "no-access")
AUTH_MODES = ("oidc", "access-key")
MAX_REVIEWERS = 6  # GitHub's limit for users + teams on one environment
# The app's own rules (modal_app/options.py): a GPU list the config accepts is one it deploys with.
DEFAULT_GPUS = options.DEFAULT_GPUS
GPU_TYPES = options.GPU_TYPES


@dataclass(frozen=True)
class RawValue:
    """One config value as Pulumi stores it: always a string (JSON for lists and maps)."""

    value: str
    secret: bool = False


class SecretStr:
    """A secret string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('[secret]')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # pickling a config must not be a way to smuggle a secret into state
        raise TypeError("SecretStr cannot be pickled")


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
    auth_mode: Literal["oidc", "access-key"]
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
    token_id: SecretStr = field(repr=False)
    token_secret: SecretStr = field(repr=False)
    read_token_id: SecretStr | None = field(repr=False)
    read_token_secret: SecretStr | None = field(repr=False)


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


# ---------------------------------------------------------------------------------------------
# Validators: each returns None when the value is fine, else the text of what is allowed.
# ---------------------------------------------------------------------------------------------

_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_TEAM_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_BRANCH_PATTERN = re.compile(r"^[A-Za-z0-9._/*-]{1,255}$")
_MODAL_APP_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MODAL_WORKSPACE_ID = re.compile(r"^ac-[A-Za-z0-9]{8,64}$")
_MODAL_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _github_login(value: str) -> str | None:
    if _GITHUB_LOGIN.fullmatch(value):
        return None
    return "a GitHub login: 1-39 letters, digits or single hyphens, not starting or ending with '-'"


def _github_repository(value: str) -> str | None:
    if _GITHUB_REPO.fullmatch(value) and value not in (".", "..") and not value.endswith(".git"):
        return None
    return "a repository name: 1-100 letters, digits, '.', '-', '_' (without the owner or '.git')"


def _team_slug(value: str) -> str | None:
    if _TEAM_SLUG.fullmatch(value):
        return None
    return "a team slug: lowercase letters, digits, '-', '_' (the slug, not the display name)"


def _branch_pattern(value: str) -> str | None:
    if _BRANCH_PATTERN.fullmatch(value) and ".." not in value and not value.startswith("/"):
        return None
    return "a branch name or fnmatch pattern such as 'main' or 'release/*'"


def _modal_app_name(value: str) -> str | None:
    if _MODAL_APP_NAME.fullmatch(value):
        return None
    return (
        "at most 64 letters, digits, '-', '.', '_' (Modal injects no OIDC identity token into "
        "apps with other names, so the runtime role could never be assumed)"
    )


def _modal_workspace_id(value: str) -> str | None:
    if _MODAL_WORKSPACE_ID.fullmatch(value):
        return None
    return "a Modal workspace id such as 'ac-1a2b3c4d5e6f' (see `modal token info`)"


# Region, bucket and prefix rules are the app's (modal_app/settings.py): one definition, so the
# program never writes a value into the runtime secret that the app would refuse.
_aws_region = settings.region_problem
_bucket = settings.bucket_problem
_prefix = settings.prefix_problem


def _modal_user(value: str) -> str | None:
    if _MODAL_USER.fullmatch(value):
        return None
    return "a Modal service user name: letters, digits, '.', '-', '_'"


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------

_KEYS: dict[str, str] = {
    # key: one-line description, used in the README table and in "unknown key" errors
    "environment": "dev or prod; must equal the stack name",
    "githubOwner": "GitHub user or organization that owns the repository",
    "githubRepository": "repository name, without the owner",
    "reviewers": "prod: GitHub logins that must approve deploys",
    "reviewerTeams": "prod: team slugs that must approve deploys",
    "deploymentBranches": "dev: branches allowed to deploy (prod is always main only)",
    "requiredApprovals": "approvals a pull request into main needs (ruleset owner stack)",
    "ownsRepositorySettings": "true in exactly one stack: it owns MODAL_APP_NAME and the main ruleset",
    "ownsAccountSingletons": "true in the stack that creates the account's OIDC providers",
    "modalWorkspaceId": "Modal workspace id (ac-...), pinned in the runtime role's trust",
    "modalAppName": "Modal app name (default rentagpu-executor)",
    "modalServiceUserRoles": "map of Modal service user to role in this environment",
    "allowModalEnvironmentDeletion": "let `pulumi destroy` delete a Modal environment that holds objects",
    "gpus": "GPU types for run_gpu_job, first choice first",
    "modalTokenId": "secret: Modal token id CI deploys with (GitHub environment secret)",
    "modalTokenSecret": "secret: Modal token secret CI deploys with (GitHub environment secret)",
    "modalReadTokenId": "secret, optional: read-only Modal token id for PR previews and drift checks",
    "modalReadTokenSecret": "secret, optional: read-only Modal token secret (with modalReadTokenId)",
    "bucket": "S3 bucket the app reads inputs from and writes outputs to",
    "inputPrefix": "key prefix the app may read (default inputs/)",
    "outputPrefix": "key prefix the app may write (default outputs/)",
    "awsAuth": "oidc (default) or access-key",
    "accessKeyMaxAgeDays": "access-key mode: rotate keys older than this (default 90)",
    "accessKeySerial": "access-key mode: bump by one to rotate the runtime access key",
}
SECRET_KEYS = frozenset(
    {"modalTokenId", "modalTokenSecret", "modalReadTokenId", "modalReadTokenSecret"}
)
KNOWN_KEYS: Mapping[str, str] = {f"{PROJECT}:{k}": v for k, v in _KEYS.items()} | {
    "aws:region": "AWS region of the bucket and the provider",
}


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self, raw: Mapping[str, RawValue]) -> None:
        self.raw = raw
        self.problems: list[str] = []
        self.refused: set[str] = set()  # keys already reported; no second message for them

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def _get(self, key: str) -> RawValue | None:
        full = key if ":" in key else f"{PROJECT}:{key}"
        return self.raw.get(full)

    def _name(self, key: str) -> str:
        return key if ":" in key else f"{PROJECT}:{key}"

    def plain(self, key: str) -> RawValue | None:
        raw = self._get(key)
        if raw is not None and raw.secret and key not in SECRET_KEYS:
            # The program copies these values into resource inputs and plain state, and errors
            # quote them: a value someone chose to encrypt must not end up there. Never echoed.
            self.problem(
                self._name(key),
                "is stored as a secret, but this key is not one and its value would be copied "
                f"into plain resource inputs; set it with `pulumi config set {key} VALUE` "
                "(without --secret)",
            )
            self.refused.add(key)
            return None
        return raw

    def string(
        self,
        key: str,
        check: Callable[[str], str | None],
        default: str | None = None,
        required: bool = True,
    ) -> str:
        raw = self.plain(key)
        if raw is None or raw.value == "":
            if default is not None:
                return default
            if required and key not in self.refused:
                self.problem(self._name(key), f"is required: {_KEYS.get(key, KNOWN_KEYS.get(key))}")
            return ""
        allowed = check(raw.value)
        if allowed:
            self.problem(self._name(key), f"{raw.value!r} is not valid; expected {allowed}")
        return raw.value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        listed = ", ".join(choices)
        return self.string(
            key, lambda v: None if v in choices else f"one of: {listed}", default=default
        )

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.plain(key)
        if raw is None:
            return default
        text = raw.value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
        self.problem(self._name(key), f"{raw.value!r} is not valid; expected true or false")
        return default

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        raw = self.plain(key)
        if raw is None:
            return default
        try:
            number = int(raw.value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            self.problem(
                self._name(key), f"{raw.value!r} is not valid; expected a whole number {low}-{high}"
            )
            return default
        return number

    def _json(self, key: str, kind: type, example: str) -> Any:
        raw = self.plain(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw.value)
        except ValueError:
            value = None
        if not isinstance(value, kind):
            self.problem(
                self._name(key),
                f"is not valid; expected a {kind.__name__}, set with e.g. {example}",
            )
            return None
        return value

    def string_list(
        self, key: str, check: Callable[[str], str | None], default: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        value = self._json(key, list, f"`pulumi config set --path '{key}[0]' VALUE`")
        if value is None:
            return default
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"{self._name(key)}[{index}]", "is not valid; expected a string")
                continue
            allowed = check(item)
            if allowed:
                self.problem(
                    f"{self._name(key)}[{index}]", f"{item!r} is not valid; expected {allowed}"
                )
            items.append(item)
        if len(set(items)) != len(items):
            self.problem(self._name(key), "lists the same entry twice")
        return tuple(items)

    def string_map(
        self,
        key: str,
        check_key: Callable[[str], str | None],
        choices: tuple[str, ...],
    ) -> tuple[tuple[str, str], ...]:
        value = self._json(key, dict, f"`pulumi config set --path '{key}.NAME' VALUE`")
        if value is None:
            return ()
        pairs: list[tuple[str, str]] = []
        for name, role in sorted(value.items()):
            allowed = check_key(name)
            if allowed:
                self.problem(f"{self._name(key)}.{name}", f"is not valid; expected {allowed}")
            if role not in choices:
                self.problem(
                    f"{self._name(key)}.{name}",
                    f"{role!r} is not valid; expected one of: {', '.join(choices)}",
                )
            pairs.append((name, str(role)))
        return tuple(pairs)

    def secret(self, key: str, required: bool = True) -> SecretStr | None:
        raw = self._get(key)
        name = self._name(key)
        if raw is None or raw.value == "":
            if not required:
                return None
            self.problem(
                name, f"is required and must be a secret: `pulumi config set --secret {key} ...`"
            )
            return None
        if not raw.secret:
            # Never echo the value: it is a credential that is now sitting in plain text.
            self.problem(
                name,
                "is stored in plain text but must be a secret: remove it from the stack file, "
                f"run `pulumi config set --secret {key} ...`, and rotate the exposed value",
            )
            return None
        return SecretStr(raw.value)


def parse_config(stack: str, raw: Mapping[str, RawValue]) -> StackConfig:
    """Parse and check a stack's raw config; raise `ConfigError` listing every problem."""
    r = _Reader(raw)

    for key in sorted(raw):
        if key.startswith(f"{PROJECT}:") and key not in KNOWN_KEYS:
            r.problem(key, f"is not a known key; known keys: {', '.join(sorted(_KEYS))}")

    environment = r.choice("environment", ENVIRONMENTS)
    if environment in ENVIRONMENTS and stack != environment:
        r.problem(
            f"{PROJECT}:environment",
            f"is {environment!r} but the stack is {stack!r}; name each stack after its "
            "environment (dev or prod) so state, roles and secrets can never be crossed",
        )
    elif environment == "" and stack not in ENVIRONMENTS:
        r.problem("stack", f"{stack!r} is not a known stack; expected one of: dev, prod")
    # Prod-only rules follow only a consistent environment, so one mistake gives one message.
    is_prod = environment == "prod" and stack == environment

    owner = r.string("githubOwner", _github_login)
    repository = r.string("githubRepository", _github_repository)
    reviewers = r.string_list("reviewers", _github_login)
    teams = r.string_list("reviewerTeams", _team_slug)
    branches = r.string_list("deploymentBranches", _branch_pattern, default=("main",))
    approvals = r.integer("requiredApprovals", default=1, low=0, high=6)
    owns_repo = r.boolean("ownsRepositorySettings", default=False)

    if is_prod:
        if not reviewers and not teams:
            r.problem(
                f"{PROJECT}:reviewers",
                "prod needs at least one required reviewer: set reviewers (GitHub logins) "
                "and/or reviewerTeams (team slugs)",
            )
        elif len(reviewers) == 1 and not teams:
            r.problem(
                f"{PROJECT}:reviewers",
                f"prod has a single reviewer ({reviewers[0]}) and prevent_self_review is on, so "
                "that person could never approve a deploy they start; add a second reviewer or "
                "a reviewer team",
            )
        if branches != ("main",):
            r.problem(
                f"{PROJECT}:deploymentBranches",
                "prod deploys from main only; remove this key from Pulumi.prod.yaml",
            )
    if len(reviewers) + len(teams) > MAX_REVIEWERS:
        r.problem(
            f"{PROJECT}:reviewers",
            f"{len(reviewers) + len(teams)} reviewers and teams; GitHub allows at most "
            f"{MAX_REVIEWERS} per environment",
        )

    region = r.string("aws:region", _aws_region)
    bucket = r.string("bucket", _bucket)
    input_prefix = r.string("inputPrefix", _prefix, default="inputs/")
    output_prefix = r.string("outputPrefix", _prefix, default="outputs/")
    if (
        _prefix(input_prefix) is None
        and _prefix(output_prefix) is None
        and (input_prefix.startswith(output_prefix) or output_prefix.startswith(input_prefix))
    ):
        r.problem(
            f"{PROJECT}:outputPrefix",
            f"{output_prefix!r} overlaps inputPrefix {input_prefix!r}; use two separate prefixes "
            "so the app can never overwrite its own inputs",
        )
    auth_mode = r.choice("awsAuth", AUTH_MODES, default="oidc")
    owns_account = r.boolean("ownsAccountSingletons", default=False)
    max_age = r.integer("accessKeyMaxAgeDays", default=90, low=1, high=365)
    key_serial = r.integer("accessKeySerial", default=1, low=1, high=1_000_000)

    workspace_id = r.string("modalWorkspaceId", _modal_workspace_id)
    app_name = r.string("modalAppName", _modal_app_name, default=DEFAULT_APP_NAME)
    roles = r.string_map("modalServiceUserRoles", _modal_user, MODAL_ROLES)
    allow_deletion = r.boolean("allowModalEnvironmentDeletion", default=False)
    gpus = r.string_list(
        "gpus",
        lambda g: None if options.normalise_gpu(g) else f"a Modal GPU type: {options.GPU_EXPECTED}",
        default=DEFAULT_GPUS,
    )
    gpus = tuple(options.normalise_gpu(g) or g for g in gpus)
    if not gpus:
        r.problem(f"{PROJECT}:gpus", "is empty; list at least one GPU type")
    elif len(set(gpus)) != len(gpus):
        r.problem(f"{PROJECT}:gpus", "lists the same GPU twice (GPU names are not case-sensitive)")
    token_id = r.secret("modalTokenId")
    token_secret = r.secret("modalTokenSecret")
    read_token_id = r.secret("modalReadTokenId", required=False)
    read_token_secret = r.secret("modalReadTokenSecret", required=False)
    if (read_token_id is None) != (read_token_secret is None):
        r.problem(
            f"{PROJECT}:modalReadTokenSecret",
            "modalReadTokenId and modalReadTokenSecret go together: set both or neither",
        )

    if r.problems:
        raise ConfigError(stack, r.problems)

    return StackConfig(
        stack=stack,
        environment=environment,
        github=GitHubConfig(
            owner=owner,
            repository=repository,
            reviewers=reviewers,
            reviewer_teams=teams,
            deployment_branches=branches,
            required_approvals=approvals,
            owns_repository_settings=owns_repo,
        ),
        aws=AwsConfig(
            region=region,
            bucket=bucket,
            input_prefix=input_prefix,
            output_prefix=output_prefix,
            auth_mode=auth_mode,  # type: ignore[arg-type]
            owns_account_singletons=owns_account,
            access_key_max_age_days=max_age,
            access_key_serial=key_serial,
        ),
        modal=ModalConfig(
            workspace_id=workspace_id,
            app_name=app_name,
            function_name=FUNCTION_NAME,
            restricted=is_prod,
            service_user_roles=roles,
            allow_environment_deletion=allow_deletion,
            gpus=gpus,
            token_id=token_id,  # type: ignore[arg-type]  # None only when problems were raised
            token_secret=token_secret,  # type: ignore[arg-type]
            read_token_id=read_token_id,
            read_token_secret=read_token_secret,
        ),
    )


def raw_config_from_pulumi() -> dict[str, RawValue]:
    """The running program's config as `RawValue`s, secret flags included.

    Reads the engine-provided config directly because `pulumi.Config` can neither list keys (needed
    to reject typos) nor tell a secure value from a plaintext one (needed to refuse the latter).
    """
    from pulumi.runtime import config as runtime_config

    values: dict[str, Any] = {}
    env_config = runtime_config.get_config_env()
    if env_config:
        values.update(env_config)
    values.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(
        runtime_config._SECRET_KEYS.get()  # noqa: SLF001 - the SDK has no public accessor
    )
    return {
        key: RawValue(str(value), key in secret_keys)
        for key, value in values.items()
        if key.startswith(f"{PROJECT}:") or key in KNOWN_KEYS
    }
