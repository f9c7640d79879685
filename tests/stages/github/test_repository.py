"""What GitHub says of the repository and its owner, and what the stack may then ask of it:
checked before anything is created (infra/stages/github/repository.py).

GitHub's rules, from docs.github.com: teams exist only in organizations ("About teams"); on Free,
Pro and Team plans required reviewers work on public repositories only ("Deployments and
environments"); rulesets protect private repositories on Pro, Team and Enterprise Cloud only
(gated-feature note on rulesets).
"""

from __future__ import annotations

import pytest
from pulumi.errors import RunError

from infra.stages.github.repository import RepositoryFacts, facts_from, problems
from infra.tools.offline import MockGitHub, RecordingMocks, render
from tests.stacks import stack_config


def facts(**overrides) -> RepositoryFacts:
    values = {
        "owner_id": 1,
        "owner_type": "Organization",
        "repository_id": 2,
        "visibility": "public",
        "plan": "enterprise",
    }
    return RepositoryFacts(**{**values, **overrides})


def test_the_facts_come_from_the_lookups_answers() -> None:
    found = facts_from(
        '{"login": "acme-ml", "id": 31, "type": "Organization"}',
        42,
        "private",
        200,
        '{"login": "acme-ml", "plan": {"name": "Team"}}',
    )
    assert found == RepositoryFacts(31, "Organization", 42, "private", "team")
    as_user = facts_from('{"id": 7, "type": "User"}', 9, "public", 404, '{"message": "Not Found"}')
    assert (as_user.owner_type, as_user.plan) == ("User", None)


def test_a_public_organization_repository_takes_everything() -> None:
    assert problems(facts(), stack_config("prod").github, is_prod=True) == ([], [])


def test_teams_on_a_user_owned_repository_are_refused_naming_the_key() -> None:
    errors, _ = problems(facts(owner_type="User"), stack_config("prod").github, is_prod=True)
    assert any(
        e.startswith("rentagpu:reviewerTeams:") and "only in organizations" in e for e in errors
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"owner_type": "User", "visibility": "private"}, "personal account"),
        ({"visibility": "private", "plan": "team"}, "on the 'team' plan"),
        ({"visibility": "internal", "plan": "free"}, "on the 'free' plan"),
    ],
)
def test_required_reviewers_on_a_private_repository_without_enterprise_are_refused(
    overrides, expected
) -> None:
    cfg = stack_config("prod", reviewerTeams=None).github
    errors, _ = problems(facts(**overrides), cfg, is_prod=True)
    assert any(e.startswith("rentagpu:reviewers:") and expected in e for e in errors), errors


def test_a_plan_this_token_cannot_see_is_a_warning_not_an_error() -> None:
    errors, warnings = problems(
        facts(visibility="private", plan=None), stack_config("prod").github, is_prod=True
    )
    assert errors == []
    assert any("never pauses a deploy" in w for w in warnings)


def test_dev_asks_for_no_reviewers_so_a_private_repository_is_fine_for_it() -> None:
    assert problems(
        facts(owner_type="User", visibility="private"), stack_config("dev").github, is_prod=False
    ) == ([], [])


def test_a_ruleset_on_a_private_repository_of_a_free_organization_is_refused() -> None:
    cfg = stack_config("prod").github
    errors, _ = problems(facts(visibility="private", plan="free"), cfg, is_prod=True)
    assert any(e.startswith("rentagpu:ownsRepositorySettings:") for e in errors), errors


def test_a_repository_github_does_not_show_is_named() -> None:
    errors, _ = problems(facts(repository_id=0), stack_config("dev").github, is_prod=False)
    assert errors and "acme-ml/rentagpu" in errors[0] and "GITHUB_TOKEN" in errors[0]


def test_the_program_stops_before_declaring_github_resources_when_github_would_refuse() -> None:
    mocks = RecordingMocks(github=MockGitHub(owner_type="User"))
    with pytest.raises(RunError) as caught:
        render(stack_config("prod"), mocks)
    message = str(caught.value)
    assert "cannot take this stack; nothing was changed" in message
    assert "rentagpu:reviewerTeams" in message
    assert not [r for r in mocks.resources if r.type.startswith("github:index/")]
