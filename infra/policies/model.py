"""What every policy sees and says: a `Resource` view, the stack's `PolicyContext`, a `Violation`,
and the small helpers the checks share to read props.

Props use the engine's names: camelCase for provider resources (`assumeRolePolicy`,
`canAdminsBypass`), the Python input names for the Modal hook's dynamic resources
(`environment_name`, `values`). During a preview an input that depends on an unknown output is the
engine's unknown marker (`infra.core.wire.UNKNOWN`); checks skip such values, and `pulumi up`,
which analyzes every resource again once its inputs are known, enforces them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from infra.core import names
from infra.core import resource_types as types
from infra.core.config_schema import default
from infra.core.wire import is_unknown

Level = Literal["mandatory", "advisory"]


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str
    level: Level = "mandatory"

    def as_dict(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "resource": self.resource,
            "message": self.message,
            "level": self.level,
        }


@dataclass(frozen=True)
class Resource:
    """What every validator sees of one resource, whichever adapter built it."""

    type: str
    name: str
    props: Mapping[str, Any]
    secret_paths: frozenset[str] = frozenset()  # dotted input paths marked secret ('values.KEY')
    urn: str = ""

    def is_secret(self, path: str) -> bool:
        """True if the input at `path`, or a value that contains it, is marked secret."""
        parts = path.split(".")
        return any(".".join(parts[:i]) in self.secret_paths for i in range(1, len(parts) + 1))


@dataclass(frozen=True)
class PolicyContext:
    """Facts about the stack under check that no single resource carries."""

    environment: str | None  # dev or prod: what every per-environment name must carry
    access_key_max_age_days: int = default("accessKeyMaxAgeDays")
    now: datetime | None = None  # None: the current time

    def current_time(self) -> datetime:
        return self.now or datetime.now(UTC)


ResourceCheck = Callable[[Resource, PolicyContext], Iterable[str]]
StackCheck = Callable[[Sequence[Resource], PolicyContext], Iterable[tuple[Resource | None, str]]]


@dataclass(frozen=True)
class ResourcePolicy:
    name: str
    description: str
    level: Level
    check: ResourceCheck
    # Needs to know which inputs are marked secret: the pack runs it in the engine's remediation
    # pass, where secret marks are visible (see infra/policy_pack/pack.py).
    needs_secret_marks: bool = False
    applies_to: Callable[[Resource], bool] | None = None


@dataclass(frozen=True)
class StackPolicy:
    name: str
    description: str
    level: Level
    check: StackCheck


# Which resources.

GITHUB_SECRET_TYPES = (types.GITHUB_ENVIRONMENT_SECRET, types.GITHUB_REPOSITORY_SECRET)
# Every way the GitHub provider accepts a secret's value; `value` is the current one.
GITHUB_SECRET_VALUE_FIELDS = ("value", "valueEncrypted", "plaintextValue", "encryptedValue")
# Resources that live inside one GitHub environment, and the input that names it.
GITHUB_ENVIRONMENT_SCOPED = (
    types.GITHUB_ENVIRONMENT,
    types.GITHUB_DEPLOYMENT_POLICY,
    types.GITHUB_ENVIRONMENT_SECRET,
    types.GITHUB_ENVIRONMENT_VARIABLE,
)

PROD = "prod"
# prod's read-only CI credentials (drift check, preview after merge) live in this environment: no
# reviewers, but, like prod, usable from main only. Prod's drift role trusts it.
PROD_READONLY = names.readonly_environment(PROD)

MODAL_ENVIRONMENT = types.MODAL_ENVIRONMENT_NAME
MODAL_SECRET = types.MODAL_SECRET_NAME
MODAL_APP_DEPLOYMENT = types.MODAL_APP_DEPLOYMENT_NAME
MODAL_BUDGET = types.MODAL_BUDGET_NAME
MODAL_CI_TOKEN = types.MODAL_CI_TOKEN_NAME
_MODAL_KINDS = (MODAL_ENVIRONMENT, MODAL_SECRET, MODAL_APP_DEPLOYMENT, MODAL_BUDGET, MODAL_CI_TOKEN)


def modal_kind(resource: Resource) -> str | None:
    """Which Modal hook resource this is, if any.

    The hook's resources are dynamic resources: `pulumi-python:dynamic/MODULE:ModalSecret` when
    they name their type, plain `pulumi-python:dynamic:Resource` when they do not; the latter are
    told apart by their (Python-named) inputs.
    """
    suffix = resource.type.rsplit(":", 1)[-1]
    if suffix in _MODAL_KINDS:
        return suffix
    if resource.type.startswith("pulumi-python:dynamic"):
        keys = set(resource.props)  # iterating keys reads no value
        if {"secret_name", "values"} <= keys:
            return MODAL_SECRET
        if "environment_name" in keys and keys & {"restricted", "service_user_roles"}:
            return MODAL_ENVIRONMENT
        if "environment_name" in keys and "app_name" in keys:
            return MODAL_APP_DEPLOYMENT
        if "environment_name" in keys and "monthly_budget_dollars" in keys:
            return MODAL_BUDGET
    return None


# Reading props.


def known(value: Any) -> bool:
    return not is_unknown(value)


def as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def words(value: str) -> list[str]:
    """The lowercase alphanumeric words of a name ('rentagpu-prod-deploy' -> [..., 'prod', ...])."""
    return [t for t in re.split(r"[^a-z0-9]+", value.lower()) if t]
