"""Two planes of authority: which of a stack's resources CI's deploys apply, and which only an
admin's `pulumi up` does.

delivery: what runs. The Modal runtime secret, the runtime principal's inline IAM policy (which its
boundary caps) and the app deploy. `deploy.yml` applies exactly these, with `pulumi up --target`.

governance: who may do what. Everything else: GitHub environments, protections, rulesets,
workflow permissions, secrets and variables; IAM roles, their trust, the boundary, the runtime user
and its keys, the bucket, its settings and policy, the OIDC providers; the Modal environment, its
roles and spend cap, and CI's tokens. A credential that can apply one of these can hand itself the
authority it guards, so none that a branch, a merge or dev's automatic deploy can reach may.
"""

from __future__ import annotations

from typing import Literal

from infra.core import names
from infra.core import resource_types as types

Plane = Literal["delivery", "governance"]
DELIVERY: Plane = "delivery"
GOVERNANCE: Plane = "governance"


def delivery_resources(environment: str) -> tuple[tuple[str, str], ...]:
    """(type, logical name) of every delivery resource a stack of `environment` can declare (the
    runtime principal's policy is the role's in OIDC mode and the user's in access-key mode)."""
    return (
        (types.MODAL_SECRET, names.modal_runtime_secret_resource(environment)),
        (types.AWS_ROLE_POLICY, names.runtime_role_policy_resource(environment)),
        (types.AWS_USER_POLICY, names.runtime_user_policy_resource(environment)),
        (types.MODAL_APP_DEPLOYMENT, names.app_deployment_resource(environment)),
    )


def plane(environment: str, resource_type: str, name: str) -> Plane:
    return DELIVERY if (resource_type, name) in delivery_resources(environment) else GOVERNANCE


def target_globs(project: str, stack: str, environment: str) -> list[str]:
    """`pulumi up --target` arguments for the delivery plane: one URN glob per resource. `**`
    stands for the parents' types, which the program may nest differently over time; the name is
    exact (pulumi/pulumi pkg/resource/deploy/deployment.go, UrnTargets: `**` matches anything,
    `*` anything but ':', and a glob must match the whole URN)."""
    return [
        f"urn:pulumi:{stack}::{project}::**::{name}" for _, name in delivery_resources(environment)
    ]
