"""The pack as the engine runs it, minus the gRPC socket.

`infra/policy_pack/__main__.py` is run the way `pulumi-analyzer-policy-python` runs it (as a
directory, from the pack's folder) with `PolicyPack` swapped for a recorder, since the real one
serves forever. The recorded arguments then go into pulumi-policy's own analyzer servicer, which
gets protobuf requests shaped like the engine's: secrets as signature envelopes, the remediation
pass before the analysis pass. This is where "how do secrets look to a policy" is settled.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime import config as pulumi_config
from pulumi.runtime import proto
from pulumi_policy.policy import _PolicyAnalyzerServicer

from infra.core.resource_types import GITHUB_ENVIRONMENT_SECRET
from infra.policies.checklist import RESOURCE_POLICIES, STACK_POLICIES
from tests.policies.support import mark_secret, secret, urn

PACK_DIR = Path(__file__).resolve().parents[2] / "infra" / "policy_pack"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, Any]:
    """What `__main__.py` hands to PolicyPack, run from the pack's folder like the engine does."""
    recorded: dict[str, Any] = {}

    def record(**kwargs: Any) -> None:
        recorded.update(kwargs)

    saved_path, saved_cwd, saved_pack = list(sys.path), os.getcwd(), pulumi_policy.PolicyPack
    pulumi_policy.PolicyPack = record  # type: ignore[assignment]
    try:
        os.chdir(PACK_DIR)
        runpy.run_path(".", run_name="__main__")
    finally:
        pulumi_policy.PolicyPack = saved_pack  # type: ignore[assignment]
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
    return recorded


@pytest.fixture
def servicer(served, monkeypatch) -> Iterator[_PolicyAnalyzerServicer]:
    # The engine passes stack config and the stack name in the environment.
    monkeypatch.setenv("PULUMI_STACK", "prod")
    monkeypatch.setenv(
        "PULUMI_CONFIG",
        '{"rentagpu:environment": "prod", "rentagpu:githubOwner": "acme-ml", '
        '"rentagpu:githubRepository": "rentagpu"}',
    )
    # Each request copies PULUMI_CONFIG into the process-wide Pulumi config; put it back after.
    saved_config = dict(pulumi_config.CONFIG.get())
    yield _PolicyAnalyzerServicer(
        served["name"], "0.1.0", served["policies"], served["enforcement_level"]
    )
    pulumi_config.CONFIG.get().clear()
    pulumi_config.CONFIG.get().update(saved_config)


def request(typ: str, name: str, props: dict) -> Any:
    struct = struct_pb2.Struct()
    struct.update(props)
    return proto.AnalyzeRequest(urn=urn(typ, name), type=typ, name=name, properties=struct)


def diagnostics(response: Any) -> list[tuple[str, int, str]]:
    return [(d.policyName, d.enforcementLevel, d.message) for d in response.diagnostics]


def test_the_policy_pack_project_runs_python_in_the_project_virtualenv() -> None:
    project = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    venv = (PACK_DIR / project["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == (PACK_DIR.parents[1] / ".venv").resolve()


def test_the_entry_point_serves_every_checklist_policy(served) -> None:
    assert served["name"] == "rentagpu-security"
    names = [p.name for p in served["policies"]]
    assert names == [p.name for p in RESOURCE_POLICIES] + [p.name for p in STACK_POLICIES]


def test_the_engine_sees_each_policy_at_its_level(servicer) -> None:
    info = servicer.GetAnalyzerInfo(None, None)
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels.pop("secret-inputs-are-secret") == proto.REMEDIATE
    assert levels.pop("access-key-rotation") == proto.ADVISORY
    assert set(levels.values()) == {proto.MANDATORY}


SECRET_PROPS = {
    "repository": "rentagpu",
    "environment": "prod",
    "secretName": "MODAL_TOKEN_ID",
    "value": "ak-not-really-a-token",
}


def test_validation_alone_sees_secret_values_as_plain_text(served) -> None:
    """The finding the secret check is built around: `Analyze` drops the secret mark."""
    seen: list[Any] = []
    probe = pulumi_policy.ResourceValidationPolicy(
        name="probe", description="records props", validate=lambda args, _r: seen.append(args.props)
    )
    bare = _PolicyAnalyzerServicer(
        "probe", "0.0.1", [probe], pulumi_policy.EnforcementLevel.ADVISORY
    )
    marked = mark_secret(SECRET_PROPS, ["value"])
    bare.Analyze(request(GITHUB_ENVIRONMENT_SECRET, "prod-modal-token-id", marked), None)
    assert seen[0]["value"] == "ak-not-really-a-token"  # plain: nothing says it was secret


def test_a_secret_fed_value_passes_in_the_engine_order(servicer) -> None:
    req = request(
        GITHUB_ENVIRONMENT_SECRET, "prod-modal-token-id", mark_secret(SECRET_PROPS, ["value"])
    )
    remediated = servicer.Remediate(req, None)
    assert list(remediated.remediations) == []  # it only looks; the resource is left as declared
    assert diagnostics(servicer.Analyze(req, None)) == []


def test_a_plain_fed_value_is_a_mandatory_violation_that_does_not_echo_it(servicer) -> None:
    req = request(GITHUB_ENVIRONMENT_SECRET, "prod-modal-token-id", SECRET_PROPS)
    servicer.Remediate(req, None)
    ((policy, level, message),) = diagnostics(servicer.Analyze(req, None))
    assert (policy, level) == ("secret-inputs-are-secret", proto.MANDATORY)
    assert "MODAL_TOKEN_ID" in message and "ak-not-really-a-token" not in message


def test_a_modal_secret_marked_per_value_passes_and_one_plain_value_fails(servicer) -> None:
    typ = "pulumi-python:dynamic/modal:ModalSecret"
    props = {
        "environment_name": "prod",
        "secret_name": "rentagpu-runtime",
        "values": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_REGION": "eu-west-1"},
        "required_keys": ["AWS_REGION", "AWS_ROLE_ARN"],
        "__provider": secret("pickled-provider"),  # what a dynamic resource carries
    }
    good = request(
        typ, "prod-runtime-secret", mark_secret(props, ["values.AWS_ROLE_ARN", "values.AWS_REGION"])
    )
    servicer.Remediate(good, None)
    assert diagnostics(servicer.Analyze(good, None)) == []
    bad = request(typ, "prod-runtime-secret", mark_secret(props, ["values.AWS_ROLE_ARN"]))
    servicer.Remediate(bad, None)
    ((policy, _, message),) = diagnostics(servicer.Analyze(bad, None))
    assert policy == "secret-inputs-are-secret" and "AWS_REGION" in message


def test_unknown_inputs_during_preview_do_not_stop_the_checks(servicer) -> None:
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    typ = "aws:iam/role:Role"
    props = {
        "name": "rentagpu-dev-deploy",
        "path": "/rentagpu/prod/",
        "assumeRolePolicy": UNKNOWN_STRING_VALUE,
    }
    req = request(typ, "prod-deploy-role", props)
    servicer.Remediate(req, None)
    # the trust is unknown until the OIDC provider exists (checked again at `up`), but the name
    # is known now, and it carries the wrong environment
    ((policy, level, message),) = diagnostics(servicer.Analyze(req, None))
    assert (policy, level) == ("environment-isolation", proto.MANDATORY)
    assert "'rentagpu-dev-deploy'" in message


def test_stack_policies_report_against_the_resource(servicer) -> None:
    environment = {
        "repository": "rentagpu",
        "environment": "prod",
        "reviewers": [{"users": [1.0, 2.0], "teams": []}],
        "preventSelfReview": True,
        "canAdminsBypass": False,
        "deploymentBranchPolicy": {"customBranchPolicies": True, "protectedBranches": False},
    }
    typ = "github:index/repositoryEnvironment:RepositoryEnvironment"
    policy_typ = (
        "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
    )
    # prod-readonly, as every prod stack declares it (main only), so only prod is at fault.
    readonly = environment | {"environment": "prod-readonly", "preventSelfReview": False}
    del readonly["reviewers"]
    readonly_main = {
        "repository": "rentagpu",
        "environment": "prod-readonly",
        "branchPattern": "main",
    }
    resources = []
    for resource_typ, name, props in [
        (typ, "prod-environment", environment),
        (typ, "prod-readonly-environment", readonly),
        (policy_typ, "prod-readonly-run-from-main", readonly_main),
    ]:
        struct = struct_pb2.Struct()
        struct.update(props)
        resources.append(
            proto.AnalyzerResource(
                urn=urn(resource_typ, name), type=resource_typ, name=name, properties=struct
            )
        )
    response = servicer.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None)
    ((policy, level, message),) = diagnostics(response)
    assert (policy, level) == ("prod-deploys-from-main-only", proto.MANDATORY)
    assert response.diagnostics[0].urn == urn(typ, "prod-environment")
    assert "no deployment policy" in message
