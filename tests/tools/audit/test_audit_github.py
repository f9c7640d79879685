"""The audit's GitHub part against a fake GitHub REST API on 127.0.0.1, through the very client the
command uses: deployments and their approvals, refs outside the branch policy, secret ages."""

from __future__ import annotations

from infra.core.secrets import SECRET_MASK
from infra.tools.audit.findings import Severity
from infra.tools.audit.github import github_source
from tests.fakes.github_api import FakeGitHub
from tests.tools.audit.support import iso, kinds, scope_for


def _clean_prod(github: FakeGitHub) -> None:
    """prod as it should look: a main deploy approved by a reviewer, fresh secrets."""
    state = github.state
    state.add_deployment("prod", "main", iso(2), run_id=501, approved_by=("alice",))
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        state.add_environment_secret("prod", name, iso(30))
    for name in ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET"):
        state.add_environment_secret("prod-readonly", name, iso(30))


def test_audit_github_clean_prod_has_no_findings_and_lists_the_approved_deploy(
    fake_github: FakeGitHub,
) -> None:
    _clean_prod(fake_github)
    result = github_source(scope_for("prod"), fake_github.environ())
    assert result.findings == [] and result.not_checked == []
    (line,) = [a.text for a in result.activity]
    assert "to `prod`" in line and "`main`" in line and "approved by alice" in line
    assert fake_github.methods() == {"GET"}


def test_audit_github_prod_deploy_from_another_branch_is_a_high_finding(
    fake_github: FakeGitHub,
) -> None:
    _clean_prod(fake_github)
    number = fake_github.state.add_deployment(
        "prod", "feature/x", iso(1), run_id=502, approved_by=("bob",)
    )
    result = github_source(scope_for("prod"), fake_github.environ())
    (finding,) = result.findings
    assert finding.kind == "github-deploy-not-main"
    assert finding.severity is Severity.HIGH
    assert f"deployment {number}" in finding.subject and "`feature/x`" in finding.detail
    assert finding.command == "gh run view 502 --log"


def test_audit_github_dev_deploy_outside_its_branch_patterns_is_medium(
    fake_github: FakeGitHub,
) -> None:
    fake_github.state.add_deployment("dev", "release/1.2", iso(1), run_id=7)
    fake_github.state.add_deployment("dev", "experiment", iso(1), run_id=8)
    scope = scope_for("dev", deploymentBranches=["main", "release/*"])
    result = github_source(scope, fake_github.environ())
    (finding,) = result.findings
    assert (finding.kind, finding.severity) == ("github-deploy-not-main", Severity.MEDIUM)
    assert "`experiment`" in finding.detail
    # dev needs no approval: no unapproved finding for either deploy
    assert len(result.activity) == 2


def test_audit_github_prod_deploy_without_an_approval_is_a_high_finding(
    fake_github: FakeGitHub,
) -> None:
    _clean_prod(fake_github)
    fake_github.state.add_deployment("prod", "main", iso(3), run_id=503)
    # an approval recorded for another environment of the same run does not count
    fake_github.state.approvals[503] = [
        {"state": "approved", "user": {"login": "mallory"}, "environments": [{"name": "dev"}]},
        {"state": "rejected", "user": {"login": "alice"}, "environments": [{"name": "prod"}]},
    ]
    result = github_source(scope_for("prod"), fake_github.environ())
    (finding,) = result.findings
    assert (finding.kind, finding.severity) == ("github-deploy-unapproved", Severity.HIGH)
    assert "its run has no approval" in finding.detail


def test_audit_github_deployment_made_outside_actions_is_unapproved(
    fake_github: FakeGitHub,
) -> None:
    fake_github.state.add_deployment("prod", "main", iso(1), creator="mallory")
    result = github_source(scope_for("prod"), fake_github.environ())
    assert kinds(result.findings) == ["github-deploy-unapproved"]
    assert "no workflow run is recorded" in result.findings[0].detail
    assert "mallory" in result.findings[0].detail
    assert result.findings[0].command.startswith("gh api /repos/acme-ml/rentagpu/deployments/")


def test_audit_github_only_deployments_inside_the_window_are_read(
    fake_github: FakeGitHub,
) -> None:
    fake_github.state.add_deployment("prod", "feature/old", iso(30), run_id=9)
    result = github_source(scope_for("prod", since=7), fake_github.environ())
    assert result.findings == []
    assert [a.text for a in result.activity] == ["no deployment to `prod` in the last 7 days"]
    wider = github_source(scope_for("prod", since=60), fake_github.environ())
    assert kinds(wider.findings) == ["github-deploy-not-main", "github-deploy-unapproved"]


def test_audit_github_pages_through_more_than_a_hundred_deployments(
    fake_github: FakeGitHub,
) -> None:
    for i in range(130):
        fake_github.state.add_deployment("dev", "main", iso(1 + i / 1000), run_id=1000 + i)
    fake_github.state.add_deployment("dev", "wip", iso(1.2), run_id=99)
    result = github_source(scope_for("dev"), fake_github.environ())
    assert kinds(result.findings) == ["github-deploy-not-main"]
    assert len(result.activity) == 131
    pages = [p for m, p in fake_github.state.requests if "/deployments?" in p]
    assert len(pages) == 2 and "page=2" in pages[1]


def test_audit_github_secrets_older_than_the_rotation_period_are_due(
    fake_github: FakeGitHub,
) -> None:
    _clean_prod(fake_github)
    fake_github.state.add_environment_secret("prod", "PULUMI_ACCESS_TOKEN", iso(200))
    fake_github.state.environment_secrets["prod"][0]["updated_at"] = iso(100)  # MODAL_TOKEN_ID
    result = github_source(scope_for("prod", tokenRotationDays=60), fake_github.environ())
    by_subject = {f.subject: f for f in result.findings}
    assert set(by_subject) == {
        "secret `MODAL_TOKEN_ID` of environment `prod`",
        "secret `PULUMI_ACCESS_TOKEN` of environment `prod`",
    }
    token = by_subject["secret `MODAL_TOKEN_ID` of environment `prod`"]
    assert token.kind == "github-secret-due" and token.severity is Severity.MEDIUM
    assert "100 days ago" in token.detail and "60 days" in token.detail
    assert token.command == "python -m infra rotate ci-tokens --stack prod"  # minted
    other = by_subject["secret `PULUMI_ACCESS_TOKEN` of environment `prod`"]
    assert other.command == "python -m infra rotate pulumi-token --stack prod --scope write"
    # the default period (90 days) lets the 30-day-old secrets pass
    assert all(
        "MODAL_TOKEN_SECRET" not in f.subject
        for f in github_source(scope_for("prod"), fake_github.environ()).findings
    )


def test_audit_github_dev_reads_its_repository_secrets_but_not_prod_s(
    fake_github: FakeGitHub,
) -> None:
    state = fake_github.state
    state.add_environment_secret("dev", "MODAL_TOKEN_ID", iso(10))
    state.add_repository_secret("RENTAGPU_DEV_MODAL_READ_TOKEN_ID", iso(400))
    state.add_repository_secret("SOMETHING_ELSE", iso(400))
    result = github_source(scope_for("dev"), fake_github.environ())
    (finding,) = result.findings
    assert finding.subject == "secret `RENTAGPU_DEV_MODAL_READ_TOKEN_ID` of the repository"
    assert finding.command == "python -m infra rotate ci-tokens --stack dev"


def test_audit_github_a_refused_token_is_not_checked_and_never_echoed(
    fake_github: FakeGitHub,
) -> None:
    wrong = "github_pat_" + "f" * 40
    environ = {**fake_github.environ(), "GITHUB_TOKEN": wrong}
    result = github_source(scope_for("prod"), environ)
    assert result.findings == []
    assert [n.what for n in result.not_checked] == [
        "deployments",
        "secrets of environment `prod`",
        "secrets of environment `prod-readonly`",
    ]
    reason = result.not_checked[0].reason
    assert "HTTP 401" in reason and "Bad credentials" in reason
    assert wrong not in reason and SECRET_MASK in reason  # the fake echoed it; we did not


def test_audit_github_without_a_token_says_what_is_missing(fake_github: FakeGitHub) -> None:
    environ = {"GITHUB_API_URL": fake_github.url}
    result = github_source(scope_for("prod"), environ)
    (missing,) = result.not_checked
    assert missing.reason == "GITHUB_TOKEN is not set"
    assert fake_github.state.requests == []


def test_audit_github_a_missing_environment_is_not_checked_but_the_rest_is(
    fake_github: FakeGitHub,
) -> None:
    fake_github.state.add_environment_secret("prod", "MODAL_TOKEN_ID", iso(120))
    result = github_source(scope_for("prod"), fake_github.environ())
    assert kinds(result.findings) == ["github-secret-due"]
    (missing,) = result.not_checked
    assert missing.what == "secrets of environment `prod-readonly`"
    assert "HTTP 404" in missing.reason
