"""The pack over the program's own output: both stacks pass, and weakened copies are caught.

Every stack is checked twice: by `infra.tools.plan.evaluate` (what `python -m infra plan` prints)
and by the pack's pulumi-policy objects fed the way the engine feeds them (tests/policies/support).
Both must agree. Weakened copies change one rendered resource's inputs, or one builder in
infra/stages/aws/iam.py, never a hand-written stack.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from collections.abc import Callable

import pytest

from infra.core import names
from infra.core.errors import ConfigError
from infra.policies.checklist import RESOURCE_POLICIES
from infra.stages.aws import iam
from infra.tools import plan
from infra.tools.offline import Rendering, render
from infra.tools.plan import evaluate, evaluate_stacks
from infra.tools.plan import resource_view as view
from tests.policies.support import (
    ISSUE_WEAKENED_DEPLOY_POLICY,
    ISSUE_WEAKENED_GRANTS,
    context,
    run_pack,
)
from tests.stacks import stack_config

Verdicts = set[tuple[str, str, str]]


def verdicts(rendering: Rendering) -> Verdicts:
    """(policy, resource, message) from the offline plan; asserts the pack says the same."""
    ctx = context(rendering.stack)
    offline = {
        (v.policy, v.resource if v.resource != "(stack)" else "", v.message)
        for v in evaluate(rendering, ctx)
    }
    pack = {(v.policy, v.resource or "", v.message) for v in run_pack(rendering, ctx)}
    assert pack == offline, "the pack and the offline plan disagree"
    return offline


def weaken(rendering: Rendering, name: str, change: Callable[[dict], None]) -> Rendering:
    """A copy of `rendering` whose resource `name` has had `change` applied to its inputs.

    The checks read `raw_inputs` (and `secret_paths`); the masked `inputs` are for printing.
    """
    resources = []
    found = False
    for resource in rendering.resources:
        if resource.name == name:
            found = True
            raw = copy.deepcopy(dict(resource.raw_inputs))
            change(raw)
            resource = dataclasses.replace(resource, raw_inputs=raw)
        resources.append(resource)
    assert found, f"no resource {name} in the {rendering.stack} rendering"
    return dataclasses.replace(rendering, resources=tuple(resources))


def unmark(rendering: Rendering, name: str) -> Rendering:
    """A copy in which resource `name`'s inputs are no longer marked secret."""
    resources = tuple(
        dataclasses.replace(r, secret_paths=()) if r.name == name else r
        for r in rendering.resources
    )
    return dataclasses.replace(rendering, resources=resources)


def edit_json(text: str, change: Callable[[dict], None]) -> str:
    document = json.loads(text)
    change(document)
    return json.dumps(document, indent=2, sort_keys=True)


# The program's stacks pass.


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_rendered_stack_passes_the_pack(renderings, stack) -> None:
    rendering = renderings[stack]
    assert verdicts(rendering) == set()
    # and the pack really looked: the resources its checks are about are there
    types = {r.type for r in rendering.resources}
    assert {
        "aws:iam/role:Role",
        "aws:iam/rolePolicy:RolePolicy",
        "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret",
        "github:index/repositoryEnvironment:RepositoryEnvironment",
    } <= types


def test_dev_and_prod_share_nothing(renderings) -> None:
    assert evaluate_stacks([renderings["dev"], renderings["prod"]]) == []


# Weakened copies are caught by the right policy.


def test_prod_without_reviewers_is_caught(renderings) -> None:
    weak = weaken(renderings["prod"], "prod-environment", lambda raw: raw.update(reviewers=[]))
    found = verdicts(weak)
    assert {(p, r) for p, r, _ in found} == {("prod-environment-protected", "prod-environment")}


def test_prod_with_admin_bypass_and_a_second_branch_is_caught(renderings) -> None:
    weak = weaken(
        renderings["prod"], "prod-environment", lambda raw: raw.update(canAdminsBypass=True)
    )
    weak = weaken(weak, "prod-deploy-from-main", lambda raw: raw.update(branchPattern="release/*"))
    assert {(p, r) for p, r, _ in verdicts(weak)} == {
        ("prod-environment-protected", "prod-environment"),
        ("prod-deploys-from-main-only", "prod-environment"),
    }


def test_prod_readonly_open_to_a_second_branch_or_admins_is_caught(renderings) -> None:
    # Its credentials read prod's config; main only is what keeps them from PR branches.
    weak = weaken(
        renderings["prod"],
        "prod-readonly-environment",
        lambda raw: raw.update(canAdminsBypass=True),
    )
    weak = weaken(weak, "prod-readonly-run-from-main", lambda raw: raw.update(branchPattern="*"))
    assert {(p, r) for p, r, _ in verdicts(weak)} == {
        ("prod-environment-protected", "prod-readonly-environment"),
        ("prod-deploys-from-main-only", "prod-readonly-environment"),
    }


def test_prod_drift_role_trusting_another_environment_is_caught(renderings) -> None:
    host = "token.actions.githubusercontent.com"

    def retarget(trust: dict) -> None:
        condition = trust["Statement"][0]["Condition"]["StringEquals"]
        condition[f"{host}:sub"] = condition[f"{host}:sub"].replace(
            ":environment:prod-readonly", ":environment:dev-readonly"
        )

    weak = weaken(
        renderings["prod"],
        "prod-drift-role",
        lambda raw: raw.update(assumeRolePolicy=edit_json(raw["assumeRolePolicy"], retarget)),
    )
    found = verdicts(weak)
    assert {(p, r) for p, r, _ in found} == {("oidc-trust-pinned", "prod-drift-role")}
    assert any("trusts environment 'dev-readonly'" in message for _, _, message in found)


def test_a_wildcard_github_subject_is_caught(renderings) -> None:
    host = "token.actions.githubusercontent.com"

    def widen(trust: dict) -> None:
        condition = trust["Statement"][0]["Condition"]
        del condition["StringEquals"][f"{host}:sub"]
        condition["StringLike"] = {f"{host}:sub": "repo:acme-ml/*"}

    weak = weaken(
        renderings["prod"],
        "prod-deploy-role",
        lambda raw: raw.update(assumeRolePolicy=edit_json(raw["assumeRolePolicy"], widen)),
    )
    found = verdicts(weak)
    assert {(p, r) for p, r, _ in found} == {("oidc-trust-pinned", "prod-deploy-role")}
    assert any("'repo:acme-ml/*'" in message for _, _, message in found)


def test_a_star_action_is_caught(renderings) -> None:
    def grant_everything(policy: dict) -> None:
        policy["Statement"][0]["Action"].append("*")

    weak = weaken(
        renderings["dev"],
        "dev-deploy-role-policy",
        lambda raw: raw.update(policy=edit_json(raw["policy"], grant_everything)),
    )
    found = verdicts(weak)
    # '*' is too broad (iam-no-wildcards) and, among everything, grants every escalation action on
    # ARNs that are not the runtime role (iam-no-privilege-escalation): each says its own part.
    assert {(p, r) for p, r, _ in found} == {
        ("iam-no-wildcards", "dev-deploy-role-policy"),
        ("iam-no-privilege-escalation", "dev-deploy-role-policy"),
    }
    assert any("'ReadOidcProviders' allows *:" in message for _, _, message in found)
    assert any(
        "'ReadOidcProviders' allows *, which grants iam:PutRolePolicy" in message
        for _, _, message in found
    )


def test_a_runtime_builder_that_passes_roles_is_caught(monkeypatch) -> None:
    original = iam.runtime_policy

    def runtime_policy_with_pass_role(*args):
        document = original(*args)
        document["Statement"][1]["Action"].append("iam:PassRole")
        return document

    monkeypatch.setattr(iam, "runtime_policy", runtime_policy_with_pass_role)
    weak = render(stack_config("prod"))
    found = verdicts(weak)
    # The runtime may never touch IAM at all; iam:PassRole is also an escalation for any holder.
    assert {(p, r) for p, r, _ in found} == {
        ("runtime-cannot-escalate", "prod-runtime-role-s3"),
        ("iam-no-privilege-escalation", "prod-runtime-role-s3"),
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_secret_fed_from_a_plain_value_is_caught(renderings, stack) -> None:
    rendering = renderings[stack]
    (policy,) = [p for p in RESOURCE_POLICIES if p.name == "secret-inputs-are-secret"]
    assert policy.applies_to is not None
    secret_bearing = [r.name for r in rendering.resources if policy.applies_to(view(r))]
    # the two Modal token environment secrets, the two read-only token repository secrets and the
    # Modal runtime secret
    assert len(secret_bearing) >= 5
    for name in secret_bearing:
        found = verdicts(unmark(rendering, name))
        assert {(p, r) for p, r, _ in found} == {("secret-inputs-are-secret", name)}, name


def test_a_role_shared_by_dev_and_prod_is_caught(renderings) -> None:
    # dev's deploy role declared under prod's name: the same IAM role in both stacks
    shared = weaken(
        renderings["dev"], "dev-deploy-role", lambda raw: raw.update(name="rentagpu-prod-deploy")
    )
    (crossed,) = evaluate_stacks([shared, renderings["prod"]])
    assert crossed.policy == "stacks-share-nothing"
    assert crossed.resource == "dev:dev-deploy-role / prod:prod-deploy-role"
    # and the dev stack alone already refuses a role that carries prod's name
    assert {(p, r) for p, r, _ in verdicts(shared)} == {
        ("environment-isolation", "dev-deploy-role")
    }


def test_the_offline_plan_reports_and_fails_on_a_weakened_builder(monkeypatch, capsys) -> None:
    original = iam.runtime_policy

    def runtime_policy_on_everything(*args):
        document = original(*args)
        document["Statement"][1]["Resource"] = "*"
        return document

    monkeypatch.setattr(iam, "runtime_policy", runtime_policy_on_everything)
    exit_code = plan.run(argparse.Namespace(stack="prod", json=True, config_json=None))
    document = json.loads(capsys.readouterr().out)
    assert exit_code == 1
    assert [(v["policy"], v["resource"], v["level"]) for v in document["violations"]] == [
        ("iam-no-wildcards", "prod-runtime-role-s3", "mandatory")
    ]


# Least privilege: escalation, wildcard names, approvals (issue 10, outcome 5).


def issue_policy_text() -> str:
    return json.dumps(ISSUE_WEAKENED_DEPLOY_POLICY, indent=2, sort_keys=True)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_escalation_in_the_issue_s_deploy_policy_is_caught_in_a_rendered_stack(
    renderings, stack
) -> None:
    name = f"{stack}-deploy-role-policy"
    weak = weaken(renderings[stack], name, lambda raw: raw.update(policy=issue_policy_text()))
    found = verdicts(weak)
    assert {(p, r) for p, r, _ in found} == {
        ("iam-no-privilege-escalation", name),
        ("iam-arns-name-exact-resources", name),
    }
    messages = " ".join(message for _, _, message in found)
    assert all(f"allows {grant}" in messages for grant in ISSUE_WEAKENED_GRANTS)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_escalation_check_passes_both_rendered_stacks_in_access_key_mode(stack) -> None:
    # OIDC mode is test_the_rendered_stack_passes_the_pack; here the deploy role also manages the
    # runtime user's inline policy, the second allowance
    rendering = render(stack_config(stack, awsAuth="access-key"))
    (deploy,) = [r for r in rendering.resources if r.name == f"{stack}-deploy-role-policy"]
    document = json.loads(deploy.raw_inputs["policy"])
    user = names.iam_arn("123456789012", stack, "user", names.runtime_user_name(stack))
    assert any(
        "iam:PutUserPolicy" in s["Action"] and s["Resource"] == [user]
        for s in document["Statement"]
    )
    # prod in access-key mode is refused for its key in state (prod-state-holds-no-credential),
    # not for its IAM: the escalation policies pass either way
    allowed = {"prod-state-holds-no-credential"} if stack == "prod" else set()
    assert {policy for policy, _, _ in verdicts(rendering)} == allowed


@pytest.mark.parametrize(
    "target",
    [
        "arn:aws:iam::123456789012:role/rentagpu/prod/rentagpu-prod-deploy",  # CI's own role
        "arn:aws:iam::123456789012:role/rentagpu/prod/rentagpu-prod-drift",
        "arn:aws:iam::*:role/rentagpu/prod/rentagpu-prod-runtime",  # any account
        "arn:aws:iam::123456789012:role/rentagpu-prod-runtime",  # outside the stack's path
    ],
)
def test_escalation_to_another_role_than_the_runtime_s_is_caught(renderings, target) -> None:
    def retarget(policy: dict) -> None:
        (statement,) = [s for s in policy["Statement"] if s["Sid"] == "ManageRuntimeRolePolicy"]
        runtime = names.iam_arn("123456789012", "prod", "role", "rentagpu-prod-runtime")
        assert statement["Resource"] == [runtime]  # what passes: the exact runtime role
        statement["Resource"] = [target]

    weak = weaken(
        renderings["prod"],
        "prod-deploy-role-policy",
        lambda raw: raw.update(policy=edit_json(raw["policy"], retarget)),
    )
    found = verdicts(weak)
    expected = {("iam-no-privilege-escalation", "prod-deploy-role-policy")}
    if "*" in target:
        expected.add(("iam-arns-name-exact-resources", "prod-deploy-role-policy"))
    assert {(p, r) for p, r, _ in found} == expected
    assert any(f"allows iam:PutRolePolicy on {target}" in m for _, _, m in found)


def test_the_owner_stack_with_zero_required_approvals_is_caught(renderings) -> None:
    """Config refuses 0 first (rentagpu:requiredApprovals is 1-6); the pack is the second line,
    for a ruleset the program would render some other way."""
    with pytest.raises(ConfigError, match="rentagpu:requiredApprovals"):
        stack_config("prod", requiredApprovals=0)

    def no_approvals(raw: dict) -> None:
        raw["rules"]["pullRequest"]["requiredApprovingReviewCount"] = 0

    rendering = weaken(renderings["prod"], "main-ruleset", no_approvals)
    found = verdicts(rendering)
    assert {(p, r) for p, r, _ in found} == {("main-requires-approval", "main-ruleset")}
    ((_, _, message),) = found
    assert "requires 0 approving reviews" in message
    assert "set rentagpu:requiredApprovals to at least 1" in message


def test_the_owner_stack_with_one_required_approval_passes(renderings) -> None:
    rendering = renderings["prod"]  # the default: 1
    (ruleset,) = rendering.of_type("github:index/repositoryRuleset:RepositoryRuleset")
    assert ruleset.raw_inputs["rules"]["pullRequest"]["requiredApprovingReviewCount"] == 1
    assert verdicts(rendering) == set()
