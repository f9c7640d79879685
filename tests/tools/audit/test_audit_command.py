"""`python -m infra audit` end to end: the committed prod stack file, the fake Modal server, a fake
GitHub API and moto; exit codes, markdown fit for an issue, JSON, `--skip`, the source seam, and
no secret in any output."""

from __future__ import annotations

import datetime
import json
import logging
import time

import pytest

from infra.tools.audit import exit_code, run_audit
from infra.tools.audit.findings import (
    KINDS,
    Activity,
    AuditReport,
    AuditScope,
    Finding,
    NotChecked,
    Severity,
    SourceResult,
)
from infra.tools.audit.render import render_json, render_markdown
from infra.tools.cli import main
from tests.fakes.github_api import FakeGitHub
from tests.fakes.modal_fixtures import FakeModal
from tests.fakes.modal_rpc_audit import FakeAuditEvent, add_audit_event
from tests.stacks import PLANTED
from tests.tools.audit.conftest import ci_user, mint
from tests.tools.audit.support import DAY, iso, scope_for

COMMITTED_CI_USER = ci_user("prod")  # CI's minted deploy service user of the committed prod


@pytest.fixture
def prod_clean(fake_modal: FakeModal, fake_github: FakeGitHub, aws_stack, monkeypatch):
    """The committed prod stack (example-org/rentagpu, CI's minted service users) in a clean state
    in all three systems, and the environment pointing at them (MODAL_* the owner's token)."""
    state = fake_modal.state
    state.add_environment("prod", restricted=True)
    state.environments["prod"].budget_dollars = 500.0  # `pulumi up` set prod's spend cap
    mint(fake_modal, "prod")
    fake_modal.use(monkeypatch)
    github = fake_github.state
    github.owner = "example-org"
    github.add_deployment("prod", "main", iso(0.5, _now()), run_id=11, approved_by=("alice",))
    github.add_environment_secret("prod", "MODAL_TOKEN_ID", iso(10, _now()))
    github.add_environment_secret("prod-readonly", "MODAL_READ_TOKEN_ID", iso(10, _now()))
    for name, value in fake_github.environ().items():
        monkeypatch.setenv(name, value)
    aws = aws_stack("prod")
    aws.create()
    for purpose in ("deploy", "preview", "drift", "runtime"):
        aws.use_role(purpose)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.moto.endpoint_url)
    return fake_modal, fake_github, aws


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["audit", "--stack", "prod", *args])
    return code, capsys.readouterr().out


def test_audit_command_clean_prod_exits_0_then_7_with_one_finding_per_system(
    prod_clean, capsys
) -> None:
    modal, github, aws = prod_clean
    code, out = _run(capsys, "--json")
    document = json.loads(out)
    assert (code, document["findings"], document["not_checked"]) == (0, [], [])
    assert document["complete"] is True and document["stack"] == "prod"
    assert any("approved by alice" in a["text"] for a in document["activity"])
    assert modal.mutating_calls() == [] and github.methods() == {"GET"}

    modal.cli("secret", "create", "--force", "-e", "prod", "rentagpu-runtime", "A=1")  # by hand
    github.state.add_deployment("prod", "hotfix", iso(0.1, _now()), run_id=12)
    aws.iam.delete_role(RoleName="rentagpu-prod-drift")
    code, out = _run(capsys, "--json")
    document = json.loads(out)
    assert code == 7
    found = {(f["system"], f["kind"], f["severity"]) for f in document["findings"]}
    assert found == {
        ("modal", "modal-change-by-other-actor", "high"),
        ("github", "github-deploy-not-main", "high"),
        ("github", "github-deploy-unapproved", "high"),
        ("aws", "aws-principal-missing", "medium"),
    }
    assert document["counts"] == {"high": 3, "medium": 1, "low": 0}


def test_audit_command_markdown_is_an_issue_body_with_severity_and_fix(prod_clean, capsys) -> None:
    modal, _, _ = prod_clean
    add_audit_event(
        modal.state,
        FakeAuditEvent(time.time() - DAY, "app.rollback", "user", "eve|mallory", "prod"),
    )
    code, out = _run(capsys)
    assert code == 7
    lines = out.splitlines()
    assert lines[0] == "### Audit of stack `prod`: 1 finding (1 high)"
    assert "| severity | finding | what was seen | fix or investigate |" in out
    row = next(line for line in lines if line.startswith("| **high**"))
    assert "eve&#124;mallory" in row  # a pipe in a name cannot break the table
    assert "<code>modal app history rentagpu-executor -e prod</code>" in row
    assert "<details><summary>Activity" in out


def test_audit_command_an_incomplete_audit_exits_2_even_with_findings(
    prod_clean, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "github_pat_" + "0" * 40)  # refused
    modal, _, _ = prod_clean
    modal.state.set_role("prod", COMMITTED_CI_USER, "viewer")
    code, out = _run(capsys)
    assert code == 2
    assert out.startswith("### Audit of stack `prod` is incomplete: 1 findings so far")
    assert "- **GitHub**, deployments: GitHub answered GET" in out


def test_audit_command_skip_leaves_a_system_out_and_says_so(
    prod_clean, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    code, out = _run(capsys, "--skip", "github")
    assert code == 0
    assert "Checked: Modal, AWS. Skipped on request: GitHub." in out
    _, github, _ = prod_clean
    assert github.state.requests == []


def test_audit_command_rejects_a_bad_window(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["audit", "--stack", "prod", "--since", "0"])
    assert raised.value.code == 2
    assert "expected 1-400 days" in capsys.readouterr().err


def test_audit_command_sources_are_a_list_a_new_one_plugs_into(prod_clean) -> None:
    """The seam for later sources (Modal budgets): a function from scope and environment."""

    def budgets(scope, environ) -> SourceResult:
        return SourceResult(
            findings=[Finding("modal", "modal-budget", Severity.MEDIUM, "env", "no cap", "x")],
            activity=[Activity("modal", "budget read")],
        )

    report = run_audit(scope_for("prod"), {}, sources=[("modal", budgets)])
    assert [f.kind for f in report.findings] == ["modal-budget"]
    assert exit_code(report) == 7
    base = scope_for("prod")
    left_out = AuditScope(base.config, base.now, 7, 90, skipped=("modal",))
    skipped = run_audit(left_out, {}, sources=[("modal", budgets)])
    assert skipped.findings == () and exit_code(skipped) == 0


def test_audit_command_findings_sort_by_severity_and_every_kind_is_described() -> None:
    scope = scope_for("prod")
    low = Finding("aws", "aws-role-unused", Severity.LOW, "a", "b", "c")
    high = Finding("modal", "modal-service-user-role", Severity.HIGH, "a", "b", "c")
    report = AuditReport.from_results(scope, [SourceResult(findings=[low, high])])
    assert [f.severity for f in report.findings] == [Severity.HIGH, Severity.LOW]
    assert all(KINDS[f.kind] for f in report.findings)
    incomplete = AuditReport.from_results(
        scope, [SourceResult(not_checked=[NotChecked("aws", "roles", "refused")])]
    )
    assert exit_code(incomplete) == 2 and "is incomplete" in render_markdown(incomplete)


def test_audit_command_no_secret_reaches_the_output_or_the_log(
    workspace: FakeModal, fake_github: FakeGitHub, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("modal-client", "modal-utils", "grpclib", "infra"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    quiet = [n for n in ("modal-client", "modal-utils") if not logging.getLogger(n).propagate]
    for name in quiet:
        logging.getLogger(name).addHandler(caplog.handler)
    planted = "planted-" + "9" * 24
    # A secret value in Modal (the runtime secret, and an audit entry's metadata), the tokens the
    # audit itself holds, and the stack config's own secrets (tests.stacks.PLANTED).
    workspace.state.put_secret("prod", "rentagpu-runtime", {"AWS_SECRET_ACCESS_KEY": planted})
    add_audit_event(
        workspace.state,
        FakeAuditEvent(
            time.time() - DAY,
            "secret.update",
            "user",
            "alice",
            "prod",
            metadata_json=json.dumps({"new": planted}),
        ),
    )
    workspace.cli("secret", "create", "--force", "-e", "prod", "leak", f"K={planted}")
    fake_github.state.add_deployment("prod", "main", iso(1), run_id=5)
    fake_github.state.add_environment_secret("prod", "MODAL_TOKEN_SECRET", iso(200))
    fake_github.state.add_environment_secret("prod-readonly", "MODAL_READ_TOKEN_ID", iso(1))
    environ = {**workspace.environ(), **fake_github.environ()}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + "Z" * 16)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-" + "8" * 30)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    scope = scope_for("prod", now=_now())
    report = run_audit(scope, environ)
    assert {f.kind for f in report.findings} >= {
        "modal-change-by-other-actor",
        "github-deploy-unapproved",
        "github-secret-due",
    }
    # hpack logs every HTTP/2 header at DEBUG, the fake server's side included: the Modal token
    # travels in headers by design, so for it only the other loggers' records count.
    logged_but_headers = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("hpack")
    )
    outputs = render_markdown(report) + render_json(report) + repr(report)
    forbidden = [
        planted,
        fake_github.state.token,
        "aws-secret-" + "8" * 30,
        *PLANTED.values(),
    ]
    assert [value for value in forbidden if value in outputs + caplog.text] == []
    for name in quiet:
        logging.getLogger(name).removeHandler(caplog.handler)
    tokens = [workspace.token_secret, workspace.token_id]
    assert [value for value in tokens if value in outputs + logged_but_headers] == []
    assert any(r.name.startswith("botocore") for r in caplog.records)  # logs were captured


def test_audit_command_merges_a_part_run_elsewhere(prod_clean, capsys, tmp_path) -> None:
    """The workflow runs the AWS part where the stack's AWS role is (a job without environment)
    and the rest where the read tokens are; the merged report is checked in full."""
    _, _, aws = prod_clean
    aws.iam.delete_role(RoleName="rentagpu-prod-drift")
    part = tmp_path / "aws.json"
    code, _ = _run(capsys, "--skip", "modal", "--skip", "github", "--write-json", str(part))
    assert code == 7
    code, out = _run(capsys, "--skip", "aws", "--merge", str(part))
    assert code == 7
    assert "Checked: Modal, GitHub, AWS." in out and "Skipped" not in out
    assert "role `rentagpu-prod-drift`" in out
    code, out = _run(capsys, "--skip", "aws", "--merge", str(part), "--json")
    assert json.loads(out)["skipped"] == [] and json.loads(out)["complete"] is True


def test_audit_command_refuses_to_merge_another_stack_s_report(capsys, tmp_path) -> None:
    part = tmp_path / "dev.json"
    report = AuditReport.from_results(scope_for("dev"), [])
    part.write_text(render_json(report))
    code = main(
        [
            "audit",
            "--stack",
            "prod",
            "--skip",
            "modal",
            "--skip",
            "github",
            "--skip",
            "aws",
            "--merge",
            str(part),
        ]
    )
    assert code == 2
    assert "the merged report is of stack 'dev', not 'prod'" in capsys.readouterr().err


def test_audit_command_digest_follows_the_findings_not_the_dates() -> None:
    from infra.tools.audit.render import digest

    finding = Finding(
        "aws", "aws-role-unused", Severity.LOW, "role `x`", "last used 91 days ago", "c"
    )
    later = Finding(
        "aws", "aws-role-unused", Severity.LOW, "role `x`", "last used 98 days ago", "c"
    )
    other = Finding(
        "aws", "aws-role-unused", Severity.LOW, "role `y`", "last used 91 days ago", "c"
    )
    first = AuditReport.from_results(scope_for("prod"), [SourceResult(findings=[finding])])
    week_on = AuditReport.from_results(
        scope_for("prod", now=scope_for("prod").now + datetime.timedelta(days=7)),
        [SourceResult(findings=[later])],
    )
    changed = AuditReport.from_results(scope_for("prod"), [SourceResult(findings=[finding, other])])
    assert digest(first) == digest(week_on) != digest(changed)


def test_audit_command_every_finding_kind_is_in_the_readme() -> None:
    from infra.tools.plan import PROJECT_DIR

    readme = (PROJECT_DIR / "README.md").read_text()
    assert [kind for kind in KINDS if f"`{kind}`" not in readme] == []
