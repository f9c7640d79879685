"""The Modal stage the program declares, against the pack: the hook's real resources (type tokens
`pulumi-python:dynamic/rentagpu:ModalEnvironment` / `...:ModalSecret`, Python input names, the
hook's own secret marks) as the rendered stacks carry them; weakened copies are caught.
"""

from __future__ import annotations

import pytest

from infra.policies.model import MODAL_BUDGET, MODAL_ENVIRONMENT, MODAL_SECRET, modal_kind
from infra.tools.offline import RenderedResource, Rendering, render
from infra.tools.plan import evaluate_stacks
from infra.tools.plan import resource_view as view
from tests.policies.test_rendered_stacks import unmark, verdicts, weaken
from tests.stacks import stack_config


def of_kind(rendering: Rendering, kind: str) -> list[RenderedResource]:
    return [r for r in rendering.resources if modal_kind(view(r)) == kind]


@pytest.fixture(scope="module")
def modal_stages(renderings) -> dict[str, Rendering]:
    return renderings


def test_the_hook_resources_are_recognised(modal_stages) -> None:
    prod = modal_stages["prod"]
    (environment,) = of_kind(prod, MODAL_ENVIRONMENT)
    assert environment.type.endswith(":ModalEnvironment")
    assert environment.raw_inputs["environment_name"] == "prod"
    secrets = of_kind(prod, MODAL_SECRET)
    assert secrets and all(s.type.endswith(":ModalSecret") for s in secrets)
    (budget,) = of_kind(prod, MODAL_BUDGET)
    assert budget.type.endswith(":ModalBudget") and budget.name == "prod-modal-budget"
    assert budget.raw_inputs["environment_name"] == "prod"
    assert budget.raw_inputs["monthly_budget_dollars"] == 500


def test_a_budget_declared_for_the_other_stacks_environment_is_caught(modal_stages) -> None:
    (budget,) = of_kind(modal_stages["prod"], MODAL_BUDGET)
    weak = weaken(modal_stages["prod"], budget.name, lambda raw: raw.update(environment_name="dev"))
    assert {(p, r) for p, r, _ in verdicts(weak)} == {("environment-isolation", budget.name)}
    dev_with_cap = render(stack_config("dev", monthlyBudgetDollars=50))
    assert verdicts(dev_with_cap) == set()
    crossed = evaluate_stacks([dev_with_cap, weak])
    assert any("Modal budget 'dev'" in v.message for v in crossed)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_hook_resources_pass_the_pack(modal_stages, stack) -> None:
    assert verdicts(modal_stages[stack]) == set()


def test_dev_and_prod_modal_stages_share_nothing(modal_stages) -> None:
    assert evaluate_stacks(list(modal_stages.values())) == []


def test_an_unrestricted_prod_modal_environment_is_caught(modal_stages) -> None:
    (environment,) = of_kind(modal_stages["prod"], MODAL_ENVIRONMENT)
    weak = weaken(modal_stages["prod"], environment.name, lambda raw: raw.update(restricted=False))
    assert {(p, r) for p, r, _ in verdicts(weak)} == {
        ("modal-prod-environment-restricted", environment.name)
    }


def test_a_modal_secret_without_secret_marks_is_caught(modal_stages) -> None:
    for secret in of_kind(modal_stages["prod"], MODAL_SECRET):
        found = verdicts(unmark(modal_stages["prod"], secret.name))
        assert {(p, r) for p, r, _ in found} == {("secret-inputs-are-secret", secret.name)}
        keys = ", ".join(sorted(secret.raw_inputs["values"]))
        assert any(keys in message for _, _, message in found)


def test_a_modal_secret_in_the_other_environment_is_caught(modal_stages) -> None:
    secret = of_kind(modal_stages["prod"], MODAL_SECRET)[0]
    weak = weaken(modal_stages["prod"], secret.name, lambda raw: raw.update(environment_name="dev"))
    crossed = evaluate_stacks([modal_stages["dev"], weak])
    assert any(
        f"Modal secret 'dev/{secret.raw_inputs['secret_name']}'" in v.message for v in crossed
    )
    assert {(p, r) for p, r, _ in verdicts(weak)} == {("environment-isolation", secret.name)}
