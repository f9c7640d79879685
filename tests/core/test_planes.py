"""The two planes: the delivery targets CI's deploys pass to `pulumi up --target` select exactly the
delivery resources of a rendered stack, matched the way the engine matches them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from infra.core import planes
from infra.core import resource_types as types
from infra.core.config_schema import PROJECT
from infra.tools.offline import render
from infra.tools.plan import PROJECT_DIR
from tests.stacks import stack_config


def engine_match(glob: str, urn: str) -> bool:
    """pulumi/pulumi pkg/resource/deploy/deployment.go, UrnTargets.getMatcher: split on `**` (any
    text), then on `*` (any text but ':'), quote the rest, and match the whole URN."""
    segments = []
    for segment in glob.split("**"):
        segments.append("[^:]*".join(re.escape(part) for part in segment.split("*")))
    return re.fullmatch(".*".join(segments), urn) is not None


@pytest.mark.parametrize(
    ("stack", "auth"), [("dev", "oidc"), ("prod", "oidc"), ("dev", "access-key")]
)
def test_the_targets_select_exactly_the_delivery_resources(stack, auth) -> None:
    rendering = render(stack_config(stack, awsAuth=auth))
    globs = planes.target_globs(PROJECT, stack, stack)
    selected = {
        (r.type, r.name)
        for r in rendering.resources
        if any(engine_match(glob, r.urn) for glob in globs)
    }
    runtime_policy = (
        (types.AWS_ROLE_POLICY, f"{stack}-runtime-role-s3")
        if auth == "oidc"
        else (types.AWS_USER_POLICY, f"{stack}-runtime-user-s3")
    )
    assert selected == {
        (types.MODAL_SECRET, f"{stack}-modal-runtime-secret"),
        runtime_policy,
        (types.MODAL_APP_DEPLOYMENT, f"{stack}-app-deployment"),
    }
    assert all(r.urn.startswith(f"urn:pulumi:{stack}::{PROJECT}::") for r in rendering.resources)


def test_the_engine_glob_is_read_as_the_engine_reads_it() -> None:
    """The cases of pulumi/pulumi pkg/resource/deploy/deployment_test.go, TestGlobUrn."""
    urn = "urn:pulumi:stack::test::typ$aws:resource::aname"
    assert engine_match("**", urn)
    assert engine_match("**:aname", urn)
    assert not engine_match("**:aname", "urn:pulumi:stack::test::typ$aws:resource::somename")
    assert engine_match(
        "urn:pulumi:stack::test::typ*:resource::bar",
        "urn:pulumi:stack::test::typ$aws:resource::bar",
    )
    assert not engine_match(
        "urn:pulumi:stack::test::typ*:resource::bar", "urn:pulumi:stack::test::ty:resource::bar"
    )


def test_everything_a_ci_credential_could_hand_itself_is_governance(renderings) -> None:
    """Roles, trust, the boundary, keys, GitHub settings and secrets, Modal's environment and CI's
    tokens: none is in the delivery plane."""
    for stack, rendering in renderings.items():
        for resource in rendering.resources:
            if resource.type in (
                types.AWS_ROLE,
                types.AWS_POLICY,
                types.AWS_USER,
                types.AWS_ACCESS_KEY,
                types.AWS_OIDC_PROVIDER,
                types.AWS_BUCKET_POLICY,
                types.GITHUB_ENVIRONMENT,
                types.GITHUB_ENVIRONMENT_SECRET,
                types.GITHUB_REPOSITORY_SECRET,
                types.GITHUB_RULESET,
                types.GITHUB_WORKFLOW_PERMISSIONS,
                types.MODAL_ENVIRONMENT,
                types.MODAL_CI_TOKEN,
                types.MODAL_BUDGET,
            ):
                assert planes.plane(stack, resource.type, resource.name) == planes.GOVERNANCE


def test_the_planes_command_prints_the_targets_deploy_yml_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra", "planes", "--stack", "prod", "--targets"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.splitlines() == planes.target_globs(PROJECT, "prod", "prod")
