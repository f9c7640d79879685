"""The checklist in `infra.policies` as pulumi-policy policies, for the real engine.

`build_policies()` wraps every validator of `infra.policies.checklist` in a
`ResourceValidationPolicy` or `StackValidationPolicy`; `__main__.py` hands them to `PolicyPack`, which
serves them to the engine. Nothing here starts a server, so tests call `policy.validate(args, report)`
directly.

How the analyzer shows secrets (pulumi 3.272 engine, pulumi-policy 1.21.0):

- The engine sends each resource's inputs to `Analyze`, `Remediate` and (outputs) `AnalyzeStack`
  with secrets kept as secrets (`MarshalOptions{KeepSecrets: true}` in the engine's analyzer
  plugin), i.e. as the secret envelopes of `infra.core.wire`, decrypted.
- pulumi-policy's `Analyze` and `AnalyzeStack` deserialize those with `proxy_secrets=False`: the
  envelope is dropped and a validation policy sees the plain value in `args.props`, with nothing
  to tell that it was secret (pulumi/pulumi-policy#241, still open; its own integration test
  asserts `props["secret"] == "a secret value"`).
- pulumi-policy's `Remediate` deserializes with `proxy_secrets=True`: a secret arrives as a
  `pulumi_policy.Secret`, hidden behind a proxy whose `__getitem__` unwraps it, but visible
  through the proxy's raw `props["__target"]`.
- For every resource the engine runs the remediation pass of all packs first and the analysis
  pass second, in the same long-lived policy pack process, with the same inputs unless a
  remediation changed them (`pkg/resource/deploy/step_generator.go`).

So the one check that needs secret marks (`secret-inputs-are-secret`) runs at enforcement level
REMEDIATE: its `remediate` records which input paths are secret for the resource's URN and returns
nothing (it never changes a resource); its `validate`, which the engine calls right after, takes
those marks and reports; the SDK and the engine report a REMEDIATE policy's violations as
MANDATORY. If the level is changed by policy config, no marks arrive and the policy says so
instead of guessing: a secret check that cannot see secrets must not pass.

Also from the SDK: during a preview an unknown input raises `UnknownValueError` when read through
`args.props`; `plain()` below turns such values into the engine's unknown marker (`infra.core.wire.UNKNOWN`) so one unknown value
does not stop a whole policy. Stack config arrives as the `PULUMI_CONFIG` environment variable
(secrets decrypted); `context_from_environment` reads the few keys the checks use.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
    proxy,
)

from infra.core.config_schema import KEY, full_key
from infra.core.wire import UNKNOWN
from infra.policies.checklist import RESOURCE_POLICIES, STACK_POLICIES
from infra.policies.model import PolicyContext, Resource, ResourcePolicy, StackPolicy

PACK_NAME = "rentagpu-security"
PACK_DESCRIPTION = (
    "rentagpu's security checklist: secrets stay secret, prod is protected, OIDC trusts are "
    "pinned, IAM has no wildcards, the runtime cannot escalate, dev and prod stay apart."
)

# The SDK's stand-ins for an unknown value of each kind: UNKNOWN_STRING_VALUE, UNKNOWN_ARRAY_VALUE...
_UNKNOWN_SENTINELS = frozenset(
    getattr(proxy, name)
    for name in dir(proxy)
    if name.startswith("UNKNOWN_") and name.endswith("_VALUE")
)
_LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}

ContextProvider = Callable[[], PolicyContext]


# From the SDK's proxies to plain data.


def _raw(value: Any) -> Any:
    """The container behind one of the SDK's proxies; plain values pass through.

    Every proxy class in pulumi_policy (unknown-checking and secret-preserving, dict and list)
    answers `["__target"]` with what it wraps; the SDK's own serializer relies on that.
    """
    if isinstance(value, Mapping | Sequence) and not isinstance(value, str | bytes | dict | list):
        try:
            return value["__target"]
        except (KeyError, IndexError, TypeError):
            return value
    return value


def plain(value: Any) -> Any:
    """Props as plain dicts, lists and scalars; unknowns become `UNKNOWN`, secret marks drop."""
    value = _raw(value)
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return UNKNOWN
    if isinstance(value, Mapping):
        return {str(k): plain(value[k]) for k in value}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def secret_paths(value: Any, path: str = "") -> frozenset[str]:
    """Dotted paths of the `Secret`s in props deserialized the way `Remediate` does."""
    found: set[str] = set()

    def walk(item: Any, at: str) -> None:
        item = _raw(item)
        if isinstance(item, Secret):
            found.add(at)
            walk(item.value, at)
        elif isinstance(item, Mapping):
            for key in item:
                walk(item[key], f"{at}.{key}" if at else str(key))
        elif isinstance(item, list | tuple):
            for index, element in enumerate(item):
                walk(element, f"{at}.{index}" if at else str(index))

    walk(value, path)
    return frozenset(found)


class SecretMarks:
    """Secret paths per URN, from the remediation pass to the analysis pass that follows it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the SDK serves requests from a thread pool
        self._by_urn: dict[str, frozenset[str]] = {}

    def record(self, urn: str, paths: frozenset[str]) -> None:
        with self._lock:
            self._by_urn[urn] = paths

    def take(self, urn: str) -> frozenset[str] | None:
        with self._lock:
            return self._by_urn.pop(urn, None)


# Stack config.


def context_from_config(config: Mapping[str, Any], stack: str | None) -> PolicyContext:
    """The checks' context from stack config (`project:key` → value, as `PULUMI_CONFIG` has it)."""

    def get(key: str) -> str | None:
        value = config.get(full_key(key))
        return None if value is None else str(value)

    max_age_key = KEY["accessKeyMaxAgeDays"]
    max_age = max_age_key.default
    try:
        configured = int(get(max_age_key.name) or max_age_key.default)
        if max_age_key.low <= configured <= max_age_key.high:  # type: ignore[operator]
            max_age = configured
    except ValueError:
        pass  # the program's own config check reports it, naming the key
    return PolicyContext(
        environment=get("environment") or stack,
        access_key_max_age_days=max_age,
    )


def context_from_environment(environ: Mapping[str, str] | None = None) -> PolicyContext:
    """The context of the stack the engine is running this pack for."""
    environ = os.environ if environ is None else environ
    try:
        config = json.loads(environ.get("PULUMI_CONFIG") or "{}")
    except ValueError:
        config = {}
    if not isinstance(config, dict):
        config = {}
    return context_from_config(config, environ.get("PULUMI_STACK"))


# Policies.


def _resource_policy(
    spec: ResourcePolicy, context: ContextProvider, marks: SecretMarks
) -> ResourceValidationPolicy:
    def view(args: ResourceValidationArgs, paths: frozenset[str]) -> Resource:
        return Resource(args.resource_type, args.name, plain(args.props), paths, args.urn)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        paths: frozenset[str] | None = frozenset()
        if spec.needs_secret_marks:
            paths = marks.take(args.urn)
            if paths is None:
                if spec.applies_to is None or spec.applies_to(view(args, frozenset())):
                    report(
                        f"{args.name}: cannot tell which inputs are secret, because the "
                        "remediation pass that sees secret marks did not run for it: keep "
                        f"'{spec.name}' at enforcement level 'remediate'",
                        None,
                    )
                return
        for message in spec.check(view(args, paths), context()):
            report(message, None)

    if not spec.needs_secret_marks:
        return ResourceValidationPolicy(
            name=spec.name,
            description=spec.description,
            validate=validate,
            enforcement_level=_LEVELS[spec.level],
        )

    def remediate(args: ResourceValidationArgs) -> None:
        # Only looks: returning None leaves the resource exactly as the program declared it.
        marks.record(args.urn, secret_paths(args.props))
        return None

    return ResourceValidationPolicy(
        name=spec.name,
        description=spec.description,
        validate=validate,
        remediate=remediate,
        # Reported as mandatory by the SDK and the engine; REMEDIATE is what makes the engine call
        # `remediate`, the only place secret marks are visible.
        enforcement_level=EnforcementLevel.REMEDIATE,
    )


def _stack_policy(spec: StackPolicy, context: ContextProvider) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            Resource(r.resource_type, r.name, plain(r.props), frozenset(), r.urn)
            for r in args.resources
        ]
        for resource, message in spec.check(resources, context()):
            report(message, resource.urn if resource is not None and resource.urn else None)

    return StackValidationPolicy(
        name=spec.name,
        description=spec.description,
        validate=validate,
        enforcement_level=_LEVELS[spec.level],
    )


def build_policies(
    context: ContextProvider = context_from_environment, marks: SecretMarks | None = None
) -> list[Policy]:
    """Every check of the checklist as a pulumi-policy policy, in the checklist's order."""
    marks = marks or SecretMarks()
    built: list[Policy] = [_resource_policy(p, context, marks) for p in RESOURCE_POLICIES]
    built += [_stack_policy(p, context) for p in STACK_POLICIES]
    return built
