"""The OIDC subjects the CI roles trust are the ones GitHub issues, whatever the repository's
history: the owner stack makes the repository issue a fixed template of numeric ids, and every
role pins exactly that (a model of GitHub's issuer: tests/fakes/github_oidc.py)."""

from __future__ import annotations

import json

import pytest
from pulumi.errors import RunError

from infra.core import names
from infra.tools.offline import MockGitHub, RecordingMocks, render, stable_id
from tests.fakes.github_oidc import Repository, issued_subject
from tests.stacks import stack_config

TEMPLATE = "github:index/actionsRepositoryOidcSubjectClaimCustomizationTemplate:ActionsRepositoryOidcSubjectClaimCustomizationTemplate"
ROLE = "aws:iam/role:Role"
# Each CI role, and the job context GitHub puts in the token of the job that assumes it.
JOBS = [
    ("prod", "deploy", "environment:prod"),  # deploy.yml, environment prod
    ("prod", "drift", "environment:prod-readonly"),  # drift.yml check-prod, preview-prod
    ("dev", "deploy", "environment:dev"),  # deploy.yml on a push to main
    ("dev", "preview", "pull_request"),  # preview.yml on a pull request
    ("dev", "drift", "ref:refs/heads/main"),  # drift.yml check-dev
]


def repository(immutable: bool) -> Repository:
    # The ids the mocked GitHub answers for acme-ml/rentagpu.
    return Repository(
        owner="acme-ml",
        owner_id=int(stable_id("owner", "acme-ml")),
        name="rentagpu",
        repository_id=int(stable_id("repository", "acme-ml/rentagpu")),
        immutable_subject=immutable,
    )


def pinned_subject(rendering, purpose: str) -> str:
    found = rendering.one(ROLE, f"{rendering.stack}-{purpose}-role")
    (statement,) = json.loads(found.inputs["assumeRolePolicy"])["Statement"]
    return statement["Condition"]["StringEquals"][f"{names.GITHUB_OIDC_HOST}:sub"]


def test_the_owner_stack_declares_the_template_and_the_other_does_not(renderings) -> None:
    template = renderings["prod"].one(TEMPLATE)
    assert template.inputs["useDefault"] is False
    assert template.inputs["includeClaimKeys"] == list(names.GITHUB_SUBJECT_CLAIMS)
    assert template.inputs["repository"] == "rentagpu"
    assert renderings["dev"].of_type(TEMPLATE) == []


@pytest.mark.parametrize("immutable", [False, True], ids=["legacy-default", "new-default"])
@pytest.mark.parametrize(("stack", "purpose", "context"), JOBS)
def test_every_ci_role_trusts_exactly_the_subject_github_issues(
    renderings, immutable, stack, purpose, context
) -> None:
    template = renderings["prod"].one(TEMPLATE).inputs["includeClaimKeys"]
    issued = issued_subject(repository(immutable), context, template)
    assert pinned_subject(renderings[stack], purpose) == issued


@pytest.mark.parametrize("immutable", [False, True], ids=["legacy-default", "new-default"])
def test_without_the_template_no_role_would_ever_match(renderings, immutable) -> None:
    """Why the template: GitHub's default subject names the repository, in a form that depends on
    when it was created or renamed; a trust pinned to either form breaks for the other."""
    for stack, purpose, context in JOBS:
        default = issued_subject(repository(immutable), context, None)
        assert pinned_subject(renderings[stack], purpose) != default


def test_a_stack_refuses_to_trust_ids_the_repository_does_not_issue_yet() -> None:
    """dev relies on the template the owner stack declares; before that exists, its roles would
    trust subjects GitHub never sends, so the preview stops and says which stack to run first."""
    with pytest.raises(RunError) as caught:
        render(stack_config("dev"), RecordingMocks(github=MockGitHub(subject_template=None)))
    message = str(caught.value)
    assert "OIDC subject template is GitHub's default" in message
    assert "rentagpu:ownsRepositorySettings" in message and "first" in message
