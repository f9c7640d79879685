"""`python -m infra report`: engine JSON to a markdown change/drift report, secrets masked.

The fixtures are PreviewDigest documents in the shape `pulumi preview --json` and
`pulumi refresh --preview-only --json` print (pulumi/pulumi pkg/display/json.go): unchanged
resources as `same`/`refresh` steps, drift as `update` (with or without `detailedDiff`), a
resource gone as `delete`, secrets as "[secret]".
"""

from __future__ import annotations

import json
import secrets
import string
from pathlib import Path

import pytest

from infra.core.errors import ReportError
from infra.tools.cli import main
from infra.tools.report import EXIT_CHANGES, EXIT_NO_CHANGES
from infra.tools.report.changes import build_report
from infra.tools.report.document import load_document, parse_urn
from infra.tools.report.markdown import render_markdown
from infra.tools.report.values import join_path, split_path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def report(path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["report", *args, str(path)])
    return code, capsys.readouterr().out


def document(name: str) -> dict:
    return load_document((FIXTURES / name).read_text())


# No changes.


def test_refresh_without_drift_says_so_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = report(FIXTURES / "refresh_no_drift.json", capsys=capsys)
    assert code == EXIT_NO_CHANGES == 0
    assert out.startswith("### No drift in stack `dev`")
    assert "####" not in out  # no resource sections


def test_preview_without_changes_says_so_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = report(FIXTURES / "preview_no_changes.json", capsys=capsys)
    assert code == 0
    assert out.startswith("### No changes in stack `dev`")


# Drift.


def test_a_changed_property_shows_expected_against_actual(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = report(
        FIXTURES / "refresh_drift.json", "--kind", "refresh", "--show-values", capsys=capsys
    )
    assert code == EXIT_CHANGES == 7
    assert out.startswith("### Drift in stack `prod`: 4 resources differ from the last deployment")
    assert "#### `aws:iam/role:Role` **prod-runtime-role**: changed outside Pulumi" in out
    assert "| property | expected | actual |" in out
    assert "| <code>maxSessionDuration</code> | <code>3600</code> | <code>43200</code> |" in out
    assert '| <code>tags.owner</code> | *(absent)* | <code>"someone-in-console"</code> |' in out
    # The weakened prod environment, property by property.
    assert "| <code>canAdminsBypass</code> | <code>false</code> | <code>true</code> |" in out
    assert "| <code>preventSelfReview</code> | <code>true</code> | <code>false</code> |" in out


def test_a_policy_held_as_a_json_string_is_diffed_statement_by_statement(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # This step came without detailedDiff: the report compares the two states itself.
    _, out = report(FIXTURES / "refresh_drift.json", "--show-values", capsys=capsys)
    assert (
        '| <code>policy → Statement[1].Action</code> | <code>["s3:GetObject", "s3:PutObject"]'
        '</code> | <code>["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]</code> |'
    ) in out
    assert "| <code>policy → Statement[1].Resource</code> |" in out
    assert '<code>["*"]</code>' in out


def test_a_deleted_resource_is_reported_as_gone(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = report(FIXTURES / "refresh_drift.json", capsys=capsys)
    assert "**prod-deploy-from-main**: deleted outside Pulumi: the resource no longer exists" in out
    assert "`pulumi up` would create it again" in out


def test_unchanged_resources_and_the_root_stack_are_left_out() -> None:
    built = build_report(document("refresh_drift.json"))
    assert built.kind == "refresh"
    assert {c.name for c in built.changes} == {
        "prod-runtime-role",
        "prod-runtime-role-s3",
        "prod-environment",
        "prod-deploy-from-main",
    }
    assert built.undetailed == 0


# Secrets.


def planted_fixture(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """refresh_drift_secrets.json with a fresh random value at each @@PLANTED_...@@ spot."""
    alphabet = string.ascii_letters + string.digits
    values = {
        key: "planted" + "".join(secrets.choice(alphabet) for _ in range(24))
        for key in ("ENV", "VALUE", "SIG", "NAMED")
    }
    text = (FIXTURES / "refresh_drift_secrets.json").read_text()
    for key, value in values.items():
        assert f"@@PLANTED_{key}@@" in text
        text = text.replace(f"@@PLANTED_{key}@@", value)
    path = tmp_path / "refresh.json"
    path.write_text(text)
    return path, values


def test_changed_secrets_are_masked_on_both_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, values = planted_fixture(tmp_path)
    code, out = report(path, "--show-values", capsys=capsys)
    assert code == 7
    for value in values.values():
        assert value not in out
    assert "planted" not in out
    secret = "<code>[secret]</code>"
    # additionalSecretOutputs: the dynamic provider read the env back unmarked.
    assert f"| <code>env</code> | {secret} | {secret} |" in out
    # The `value` of a ...Secret resource, whatever the state says.
    assert f"| <code>value</code> | {secret} | {secret} |" in out
    # The secret signature object, and a property named like a secret.
    assert f"| <code>tags.note</code> | *(absent)* | {secret} |" in out
    assert f"| <code>tags.MODAL_TOKEN_SECRET</code> | *(absent)* | {secret} |" in out
    # What is not secret still shows.
    assert "2026-11-27 22:03:11 +0000 UTC" in out


def test_marked_rows_say_they_are_secret(tmp_path: Path) -> None:
    path, _ = planted_fixture(tmp_path)
    built = build_report(load_document(path.read_text()))
    rows = {(c.name, p.path): p.secret for c in built.changes for p in c.properties}
    assert rows == {
        ("dev-runtime-secret", "env"): True,
        ("dev-modal-token-secret", "value"): True,
        ("dev-modal-token-secret", "remoteUpdatedAt"): False,
        ("dev-bucket", "tags.note"): True,
        ("dev-bucket", "tags.MODAL_TOKEN_SECRET"): True,
    }


def test_a_secret_object_is_never_opened_even_when_both_sides_are_objects() -> None:
    # `pulumi stack export --show-secrets` style: the signature plus the plaintext `value`.
    leak = "planted" + secrets.token_hex(12)
    sig = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
    urn = "urn:pulumi:dev::rentagpu::rentagpu:stage:Aws$aws:s3/bucket:Bucket::dev-bucket"
    step = {
        "op": "update",
        "urn": urn,
        "oldState": {"outputs": {"website": {**sig, "value": "old"}}},
        "newState": {"outputs": {"website": {**sig, "value": leak}}},
        "detailedDiff": None,
    }
    built = build_report({"steps": [step]}, kind="refresh")
    (row,) = built.changes[0].properties
    assert (row.path, row.secret) == ("website", True)
    assert leak not in render_markdown(built)


def test_values_are_hidden_unless_shown_on_purpose(capsys: pytest.CaptureFixture[str]) -> None:
    """A drift report lands in an issue; a value someone put where a secret belongs is not marked
    secret, so by default only the changed properties are named."""
    _, out = report(FIXTURES / "refresh_drift.json", capsys=capsys)
    assert "maxSessionDuration" in out
    assert "43200" not in out and "3600" not in out
    assert "*(hidden)*" in out
    _, shown = report(FIXTURES / "refresh_drift.json", "--show-values", capsys=capsys)
    assert "43200" in shown


# Preview.


def test_a_preview_lists_creates_updates_replaces_and_deletes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = report(FIXTURES / "preview_changes.json", "--show-values", capsys=capsys)
    assert code == 7
    assert out.startswith("### Preview of stack `dev`: 4 resources to change")
    assert "**dev-runtime-role**: will be replaced" in out
    assert (
        '| <code>name</code> | <code>"rentagpu-dev-runtime"</code> | '
        '<code>"rentagpu-dev-gpu-runtime"</code> |'
    ) in out
    assert "**dev-deploy-from-release**: will be created" in out
    assert "**dev-deploy-from-main**: will be deleted" in out
    assert "| before | after |" in out
    # A value the engine only knows after deploy is not shown as its placeholder UUID.
    assert (
        '| <code>role</code> | <code>"rentagpu-dev-runtime"</code> | *(known after deploy)* |'
        in out
    )
    assert "04da6b54" not in out


def test_a_long_report_is_cut_to_fit_a_github_issue() -> None:
    built = build_report(document("refresh_drift.json"))
    short = render_markdown(built, max_chars=1500)
    assert len(short) <= 1500
    assert "more resource(s) not shown" in short


# Malformed input.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty input"),
        ('{"steps": [', "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ("{}", "neither `steps` nor `changeSummary`"),
        ('{"stack": "dev", "resources": [], "violations": []}', "infra plan --json"),
        ('{"sequence": 0}\n{"sequence": 1}\n', "stream of engine events"),
        ('{"steps": [{"urn": "urn:pulumi:dev::p::t::n"}]}', "step 0 has no `op`"),
        ('{"steps": [{"op": "update", "urn": "arn:aws:iam::1:role/x"}]}', "step 0 has no"),
        ('{"steps": [], "changeSummary": {"update": "two"}}', "not a map of counts"),
    ],
)
def test_input_that_is_not_an_engine_document_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ReportError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_document(text)


def test_malformed_json_exits_2_with_the_reason_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["report", str(FIXTURES / "malformed_truncated.json")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("error: not JSON")
    assert "pulumi preview --json" in captured.err


def test_a_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


# Pieces.


def test_urns_name_the_type_and_the_resource() -> None:
    urn = "urn:pulumi:prod::rentagpu::rentagpu:stage:Aws$aws:iam/role:Role::prod-runtime-role"
    assert parse_urn(urn) == ("prod", "aws:iam/role:Role", "prod-runtime-role")
    with pytest.raises(ReportError):
        parse_urn("urn:pulumi:prod")


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("tags.owner", ["tags", "owner"]),
        ("rules[0].cidr", ["rules", 0, "cidr"]),
        ('tags["kubernetes.io/role"]', ["tags", "kubernetes.io/role"]),
        ("environment.ADDED", ["environment", "ADDED"]),
    ],
)
def test_detailed_diff_paths_round_trip(path: str, segments: list) -> None:
    assert split_path(path) == segments
    assert split_path(join_path(segments)) == segments


def test_fixtures_are_engine_documents() -> None:
    for path in FIXTURES.glob("*.json"):
        if path.name.startswith("malformed"):
            continue
        parsed = json.loads(path.read_text())
        assert set(parsed) <= {"config", "steps", "diagnostics", "duration", "changeSummary"}
        assert load_document(path.read_text()) == parsed
