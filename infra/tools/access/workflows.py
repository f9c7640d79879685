"""What the workflows hand out: each job's triggers, GitHub environment, and the secrets, variables,
OIDC token and job-token permissions it receives, read from `.github/workflows/*.yml` as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SECRET = re.compile(r"\bsecrets\.([A-Za-z0-9_]+)")
_VARIABLE = re.compile(r"\bvars\.([A-Za-z0-9_]+)")
_INPUT = re.compile(r"\binputs\.([A-Za-z0-9_-]+)")
_QUOTED = re.compile(r"'([^']*)'")


@dataclass(frozen=True)
class JobUse:
    """One job of one workflow, as far as credentials go."""

    workflow: str  # file name: deploy.yml
    job: str
    triggers: tuple[str, ...]  # event names: push, pull_request, schedule, workflow_dispatch
    push_branches: tuple[str, ...]  # branches a push runs it for; () for any
    environments: tuple[str | None, ...]  # the GitHub environment it may name (None: none)
    secrets: frozenset[str]
    variables: frozenset[str]
    id_token: bool  # may request an OIDC token
    permissions: Mapping[str, str] = field(default_factory=dict)  # its job token's
    stack: str | None = None  # the stack it runs pulumi for (its `env: STACK:`), if it says

    @property
    def label(self) -> str:
        return f"{self.workflow} / {self.job}"

    def branch_text(self) -> str:
        """Which branches' code the job can run: what GitHub lets choose it, not its `if:`, which
        the branch being run can rewrite."""
        parts = []
        for trigger in self.triggers:
            if trigger == "push":
                parts.append(", ".join(self.push_branches) or "any")
            elif trigger in ("pull_request", "pull_request_target"):
                parts.append("any (a pull request's head)")
            elif trigger == "schedule":
                parts.append("the default branch")
            elif trigger == "workflow_dispatch":
                parts.append("any (chosen by whoever runs it)")
        return "; ".join(dict.fromkeys(parts)) or "any"

    def trigger_text(self) -> str:
        parts = []
        for trigger in self.triggers:
            if trigger == "push":
                branches = ", ".join(self.push_branches) or "any branch"
                parts.append(f"push to {branches}")
            else:
                parts.append(trigger)
        return ", ".join(parts)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text()) or {}
    if True in document:  # YAML 1.1 reads the key `on` as the boolean True
        document["on"] = document.pop(True)
    return document


def _triggers(document: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    on = document.get("on") or {}
    if isinstance(on, str):
        return (on,), ()
    if isinstance(on, list):
        return tuple(on), ()
    push = on.get("push") or {}
    branches = tuple(push.get("branches") or ()) if isinstance(push, Mapping) else ()
    return tuple(on), branches


def _environments(job: Mapping[str, Any], document: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The environments a job may name: a literal, or each value an expression can take (the
    options and default of the `workflow_dispatch` inputs it reads, and its quoted fallbacks)."""
    value = job.get("environment")
    if isinstance(value, Mapping):
        value = value.get("name")
    if value is None:
        return (None,)
    text = str(value)
    if "${{" not in text:
        return (text,)
    dispatch = (
        ((document.get("on") or {}).get("workflow_dispatch") or {})
        if isinstance(document.get("on"), Mapping)
        else {}
    )
    inputs = (dispatch or {}).get("inputs") or {}
    found: list[str] = []
    for name in _INPUT.findall(text):
        spec = inputs.get(name) or {}
        found += [str(option) for option in spec.get("options") or ()]
        if spec.get("default") is not None:
            found.append(str(spec["default"]))
    found += _QUOTED.findall(text)
    return tuple(dict.fromkeys(found)) or (None,)


def job_uses(workflows: Path) -> Iterator[JobUse]:
    for path in sorted(workflows.glob("*.y*ml")):
        document = load(path)
        triggers, branches = _triggers(document)
        default_permissions = document.get("permissions") or {}
        for job_id, job in (document.get("jobs") or {}).items():
            text = yaml.safe_dump(job)
            permissions = job.get("permissions", default_permissions) or {}
            if isinstance(permissions, str):  # read-all / write-all
                permissions = {"*": permissions.removesuffix("-all")}
            yield JobUse(
                workflow=path.name,
                job=str(job_id),
                triggers=triggers,
                push_branches=branches,
                environments=_environments(job, document),
                secrets=frozenset(_SECRET.findall(text)) - {"GITHUB_TOKEN"},
                variables=frozenset(_VARIABLE.findall(text)),
                id_token=permissions.get("id-token") == "write",
                permissions={str(k): str(v) for k, v in permissions.items()},
                stack=(job.get("env") or {}).get("STACK"),
            )
