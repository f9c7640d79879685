"""Drive the pack's policies the way the engine and pulumi-policy do, without starting a pack.

Props are built as the engine sends them (secrets as signature envelopes) and deserialized with
pulumi-policy's own functions: `proxy_secrets=True` for the remediation pass, plain for analysis,
each wrapped in the SDK's unknown-checking proxy. So a test sees exactly what a policy sees under
`pulumi preview --policy-pack`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from infra.core import names
from infra.core.wire import SECRET_SIG as _SIG
from infra.core.wire import SECRET_SIG_KEY as _SIG_KEY
from infra.policies.model import PolicyContext
from infra.policy_pack.pack import SecretMarks, build_policies

SECRET_SIG = {_SIG_KEY: _SIG}
UNKNOWN_STRING = UNKNOWN_STRING_VALUE
REPOSITORY = "acme-ml/rentagpu"


def context(environment: str | None = "prod", **kwargs: Any) -> PolicyContext:
    return PolicyContext(environment=environment, **kwargs)


def secret(value: Any) -> dict[str, Any]:
    """A value as the engine sends a secret to a policy pack (decrypted, but marked)."""
    return {**SECRET_SIG, "value": value}


def mark_secret(props: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """Engine-style props: the values at these dotted paths wrapped as secrets."""
    marked = copy.deepcopy(dict(props))
    # Deepest first, so wrapping 'values' after 'values.KEY' still finds the inner value.
    for path in sorted(paths, key=lambda p: p.count("."), reverse=True):
        parts = path.split(".")
        holder: Any = marked
        for part in parts[:-1]:
            holder = holder[int(part)] if isinstance(holder, list) else holder[part]
        last: Any = int(parts[-1]) if isinstance(holder, list) else parts[-1]
        holder[last] = secret(holder[last])
    return marked


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def urn(typ: str, name: str, stack: str = "prod") -> str:
    return f"urn:pulumi:{stack}::rentagpu::{typ}::{name}"


def analysis_args(typ: str, name: str, engine_props: Mapping[str, Any]) -> ResourceValidationArgs:
    """What pulumi-policy's `Analyze` hands `validate`: secret envelopes dropped, unknowns guarded."""
    props = unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(engine_props))))
    return ResourceValidationArgs(typ, props, urn(typ, name), name, _options(), None)


def remediation_args(
    typ: str, name: str, engine_props: Mapping[str, Any]
) -> ResourceValidationArgs:
    """What pulumi-policy's `Remediate` hands `remediate`: secrets kept as `Secret` behind a proxy."""
    props = unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(engine_props)), True))
    return ResourceValidationArgs(typ, props, urn(typ, name), name, _options(), None)


def stack_args(resources: Sequence[tuple[str, str, Mapping[str, Any]]]) -> StackValidationArgs:
    """What pulumi-policy's `AnalyzeStack` hands a stack policy (engine-style props per resource)."""
    return StackValidationArgs(
        [
            PolicyResource(
                typ,
                unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(props)))),
                urn(typ, name),
                name,
                _options(),
                None,
                None,
                [],
                {},
            )
            for typ, name, props in resources
        ]
    )


def pack_policies(ctx: PolicyContext) -> dict[str, Any]:
    return {p.name: p for p in build_policies(lambda: ctx, SecretMarks())}


def validate_resource(
    policy: ResourceValidationPolicy, typ: str, props: Mapping[str, Any], name: str = "subject"
) -> list[str]:
    """Messages `policy` reports for one resource, after the remediation pass if it has one.

    `props` are engine-style: wrap secret values with `secret()` / `mark_secret()`.
    """
    if policy.has_remediation():
        policy.remediate(remediation_args(typ, name, props))
    reported: list[str] = []
    policy.validate(
        analysis_args(typ, name, props), lambda message, _urn=None: reported.append(message)
    )
    return reported


def validate_stack(
    policy: StackValidationPolicy, resources: Sequence[tuple[str, str, Mapping[str, Any]]]
) -> list[tuple[str | None, str]]:
    """(urn, message) pairs a stack policy reports."""
    reported: list[tuple[str | None, str]] = []
    policy.validate(stack_args(resources), lambda message, at=None: reported.append((at, message)))
    return reported


@dataclass(frozen=True)
class PackVerdict:
    policy: str
    resource: str | None
    message: str


def run_pack(rendering: Any, ctx: PolicyContext) -> list[PackVerdict]:
    """The whole pack over a rendered stack, in the engine's order: per resource every
    remediation, then every validation; then the stack policies."""
    policies = build_policies(lambda: ctx, SecretMarks())
    verdicts: list[PackVerdict] = []
    engine_resources = []
    for rendered in rendering.resources:
        # The engine leaves internal keys (a dynamic resource's `__provider`) out of analysis.
        props = {k: v for k, v in rendered.raw_inputs.items() if not k.startswith("__")}
        engine = mark_secret(props, [p for p in rendered.secret_paths if not p.startswith("__")])
        engine_resources.append((rendered.type, rendered.name, engine))
        resource_policies = [p for p in policies if isinstance(p, ResourceValidationPolicy)]
        for policy in resource_policies:
            if policy.has_remediation():
                policy.remediate(remediation_args(rendered.type, rendered.name, engine))
        for policy in resource_policies:
            policy.validate(
                analysis_args(rendered.type, rendered.name, engine),
                lambda message, _urn=None, p=policy, r=rendered: verdicts.append(
                    PackVerdict(p.name, r.name, message)
                ),
            )
    for policy in policies:
        if isinstance(policy, StackValidationPolicy):
            for at, message in validate_stack(policy, engine_resources):
                name = at.rsplit("::", 1)[-1] if at else None
                verdicts.append(PackVerdict(policy.name, name, message))
    return verdicts


# Props and helpers shared by the per-policy tests.
ACCOUNT = "123456789012"
GITHUB_PROVIDER = names.oidc_provider_arn(ACCOUNT, names.GITHUB_OIDC_HOST)
MODAL_PROVIDER = names.oidc_provider_arn(ACCOUNT, names.MODAL_OIDC_HOST)
MODAL_SECRET_TYPE = "pulumi-python:dynamic/modal:ModalSecret"
MODAL_ENVIRONMENT_TYPE = "pulumi-python:dynamic/modal:ModalEnvironment"
GENERIC_DYNAMIC = "pulumi-python:dynamic:Resource"


def check(policy_name: str, typ: str, props: dict, ctx: PolicyContext | None = None) -> list[str]:
    """The messages one resource policy of the pack reports for one resource."""
    policy = pack_policies(ctx or context("prod"))[policy_name]
    return validate_resource(policy, typ, props)


def check_stack(policy_name: str, resources: list, ctx: PolicyContext | None = None) -> list:
    """The messages one stack policy of the pack reports for a stack's resources."""
    return validate_stack(pack_policies(ctx or context("prod"))[policy_name], resources)


def doc(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


def role_policy(document: dict, role_name: str = "rentagpu-prod-deploy") -> dict:
    """RolePolicy props holding `document`."""
    return {"name": "deploy-prod", "role": role_name, "policy": doc(document)}


def allow(actions: object, resources: object, **extra: object) -> dict:
    """A policy document of one Allow statement."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources, **extra}],
    }


# The deploy policy the security review of issue 10 found the pack passing ("The policy pack passes
# a deploy policy with `iam:Put*`, `iam:Pass*`, `sts:Assume*` on `arn:aws:iam::*:role/*` and
# `s3:*Object` on `arn:aws:s3:::*/*`"), verbatim.
ISSUE_WEAKENED_DEPLOY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iam:Put*", "iam:Pass*", "sts:Assume*"],
            "Resource": "arn:aws:iam::*:role/*",
        },
        {"Effect": "Allow", "Action": "s3:*Object", "Resource": "arn:aws:s3:::*/*"},
    ],
}
ISSUE_WEAKENED_GRANTS = ("iam:Put*", "iam:Pass*", "sts:Assume*", "s3:*Object")


def check_every_policy(
    typ: str, props: dict, ctx: PolicyContext | None = None
) -> list[tuple[str, str]]:
    """(policy, message) from every resource policy of the pack for one resource."""
    reported = []
    for name, policy in pack_policies(ctx or context("prod")).items():
        if isinstance(policy, ResourceValidationPolicy):
            reported += [(name, message) for message in validate_resource(policy, typ, props)]
    return reported
