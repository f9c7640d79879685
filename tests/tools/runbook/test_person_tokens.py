"""`rotate pulumi-token` and `rotate github-read-token`: the steps a person carries out, with the
names the workflows read, and `--check-since` against GitHub's REST API (the fake on 127.0.0.1,
which serves secrets' names and dates and never a value)."""

from __future__ import annotations

import pytest

from tests.fakes.github_api import FakeGitHub
from tests.stacks import raw_config
from tests.tools.audit.support import NOW, iso
from tests.tools.runbook.support import InProcessStack, assert_never_shown, run_cli

SINCE = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def stacks() -> dict[str, InProcessStack]:
    return {stack: InProcessStack(stack, raw_config(stack)) for stack in ("dev", "prod")}


@pytest.mark.parametrize(
    ("stack", "scope", "expected"),
    [
        (
            "prod",
            "write",
            [
                "gh secret set PULUMI_ACCESS_TOKEN --env prod --repo acme-ml/rentagpu",
                "read by: deploy.yml / deploy",
                "holds Write on stack rentagpu/prod and nothing else",
            ],
        ),
        (
            "prod",
            "read",
            [
                "gh secret set PULUMI_ACCESS_TOKEN --env prod-readonly --repo acme-ml/rentagpu",
                "read by: drift.yml / check-prod, preview.yml / preview-main",
                "Read includes decrypting",
            ],
        ),
        (
            "dev",
            "preview",
            [
                "gh secret set RENTAGPU_DEV_PULUMI_READ_TOKEN --repo acme-ml/rentagpu",
                "drift.yml / check-dev",
                "preview.yml / preview-dev",
            ],
        ),
    ],
)
def test_the_steps_name_where_the_workflows_read_the_pulumi_token(
    stacks, stack: str, scope: str, expected: list[str]
) -> None:
    code, output = run_cli(["rotate", "pulumi-token", "--stack", stack, "--scope", scope], stacks)
    assert code == 0, output
    for text in [
        *expected,
        "[1/5] Create the new token",
        "never a personal token",
        f"python -m infra rotate pulumi-token --stack {stack} --scope {scope} --check-since 20",
        f"python -m infra incident --stack {stack} --credential pulumi-token --verify",
    ]:
        assert text in output, output


def test_dev_has_no_read_only_pulumi_token_and_says_which_scopes_it_has(stacks) -> None:
    code, output = run_cli(["rotate", "pulumi-token", "--stack", "dev", "--scope", "read"], stacks)
    assert code == 2
    assert "stack 'dev' has no Pulumi token of scope 'read'" in output
    assert "use --scope write, preview" in output


def test_the_github_read_token_steps(stacks) -> None:
    code, output = run_cli(["rotate", "github-read-token", "--stack", "prod"], stacks)
    assert code == 0
    assert "gh secret set RENTAGPU_GITHUB_READ_TOKEN --repo acme-ml/rentagpu" in output
    assert "access to acme-ml/rentagpu only" in output and "Read-only" in output
    assert "deploy.yml / deploy" in output and "drift.yml / check-prod" in output


def check(stacks, fake_github: FakeGitHub, *argv: str) -> tuple[int, str]:
    return run_cli(["rotate", *argv, "--check-since", SINCE], stacks, environ=fake_github.environ())


def test_check_since_reads_github_s_record_of_the_secret(stacks, fake_github: FakeGitHub) -> None:
    state = fake_github.state
    state.add_environment_secret("prod", "MODAL_TOKEN_ID", iso(1))  # the environment exists
    code, output = check(stacks, fake_github, "pulumi-token", "--stack", "prod", "--scope", "write")
    assert code == 1 and "NOT SET: environment secret PULUMI_ACCESS_TOKEN" in output

    state.add_environment_secret("prod", "PULUMI_ACCESS_TOKEN", iso(3))
    code, output = check(stacks, fake_github, "pulumi-token", "--stack", "prod", "--scope", "write")
    assert (
        code == 1 and "OLD: environment secret PULUMI_ACCESS_TOKEN of environment 'prod'" in output
    )
    assert "gh secret set PULUMI_ACCESS_TOKEN --env prod" in output

    state.environment_secrets["prod"][1]["updated_at"] = iso(-0.01)  # written after SINCE
    code, output = check(stacks, fake_github, "pulumi-token", "--stack", "prod", "--scope", "write")
    assert code == 0 and "ok: environment secret PULUMI_ACCESS_TOKEN" in output

    state.add_repository_secret("RENTAGPU_GITHUB_READ_TOKEN", iso(-0.01))
    code, output = check(stacks, fake_github, "github-read-token", "--stack", "dev")
    assert code == 0 and "ok: repository secret RENTAGPU_GITHUB_READ_TOKEN" in output
    assert {method for method, _ in state.requests} == {"GET"}
    assert_never_shown(output, [state.token])


def test_check_since_refuses_a_time_it_cannot_read(stacks, fake_github: FakeGitHub) -> None:
    code, output = run_cli(
        ["rotate", "github-read-token", "--stack", "dev", "--check-since", "yesterday"],
        stacks,
        environ=fake_github.environ(),
    )
    assert code == 2 and "--check-since 'yesterday' is not a time" in output
    assert fake_github.state.requests == []
