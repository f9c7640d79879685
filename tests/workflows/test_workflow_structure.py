"""The delivery workflows, read as data: triggers, guards, permissions, environments, pins.

Each property here is one a reviewer would otherwise have to re-check by eye on every change:
who can trigger what, which job can reach which credential, and what runs in the shell.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.workflows.support import (
    ROOT,
    WORKFLOW_NAMES,
    action_files,
    all_steps,
    load_workflow,
    run_script,
    step_named,
    step_using,
    workflow_files,
)

CHECKOUT = "actions/checkout"
PULUMI_ACTION = "pulumi/actions"
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"
PREVIEW_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"

# Every job's permissions, exactly. Anything that writes is here on purpose, and nowhere else.
JOB_PERMISSIONS = {
    ("ci", "test"): {"contents": "read"},
    ("ci", "plan"): {"contents": "read"},
    ("ci", "zizmor"): {"contents": "read"},
    ("ci", "secrets"): {"contents": "read"},
    ("ci", "lint"): {"contents": "read"},
    ("preview", "preview"): {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    },
    ("deploy", "guard"): {},
    ("deploy", "deploy"): {"contents": "read", "id-token": "write"},
    ("drift", "check"): {"contents": "read", "id-token": "write"},
    ("drift", "issue"): {"issues": "write"},
}

# Credentials that can change something. None may appear outside the deploy workflow.
WRITE_CREDENTIALS = (
    "vars.AWS_DEPLOY_ROLE_ARN",
    "secrets.MODAL_TOKEN_ID",
    "secrets.MODAL_TOKEN_SECRET",
    "secrets.PULUMI_GITHUB_TOKEN",
    "secrets.PULUMI_ACCESS_TOKEN",
)
READ_ONLY_SECRETS = {
    "RENTAGPU_DEV_MODAL_READ_TOKEN_ID",
    "RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET",
    "RENTAGPU_PROD_MODAL_READ_TOKEN_ID",
    "RENTAGPU_PROD_MODAL_READ_TOKEN_SECRET",
    "RENTAGPU_GITHUB_READ_TOKEN",
    "RENTAGPU_PULUMI_READ_TOKEN",
}


def text(name: str) -> str:
    return (ROOT / ".github" / "workflows" / f"{name}.yml").read_text()


def secrets_read(name: str) -> set[str]:
    return set(re.findall(r"secrets\.([A-Z0-9_]+)", text(name)))


# --- every workflow -----------------------------------------------------------------------------


def test_the_four_workflows_exist() -> None:
    assert sorted(p.stem for p in workflow_files()) == sorted(WORKFLOW_NAMES)


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_top_level_permissions_grant_nothing(name: str) -> None:
    assert load_workflow(name)["permissions"] == {}


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_no_trigger_runs_untrusted_code_with_the_base_repository_s_rights(name: str) -> None:
    triggers = load_workflow(name)["on"]
    assert "pull_request_target" not in triggers
    assert "workflow_run" not in triggers
    assert "pull_request_target" not in text(name)


def test_every_job_has_exactly_its_listed_permissions_and_a_timeout() -> None:
    seen = {}
    for name in WORKFLOW_NAMES:
        for job_id, job in load_workflow(name)["jobs"].items():
            seen[(name, job_id)] = job.get("permissions")
            assert isinstance(job.get("timeout-minutes"), int), f"{name}/{job_id}: no timeout"
    assert seen == JOB_PERMISSIONS


def test_id_token_is_only_granted_where_a_cloud_role_is_assumed() -> None:
    with_token = {key for key, perms in JOB_PERMISSIONS.items() if perms.get("id-token")}
    assert with_token == {("preview", "preview"), ("deploy", "deploy"), ("drift", "check")}
    for name in WORKFLOW_NAMES:
        for job_id, job in load_workflow(name)["jobs"].items():
            uses = [s.get("uses", "") for s in job["steps"]]
            assumes_role = any(u.startswith(AWS_CREDENTIALS) for u in uses)
            assert assumes_role == ((name, job_id) in with_token), f"{name}/{job_id}"


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_every_workflow_has_a_concurrency_group(name: str) -> None:
    concurrency = load_workflow(name)["concurrency"]
    assert concurrency["group"]
    assert "cancel-in-progress" in concurrency


def test_every_checkout_drops_its_credentials() -> None:
    checkouts = [
        (file, job, step)
        for file, job, step in all_steps()
        if step.get("uses", "").startswith(CHECKOUT + "@")
    ]
    assert len(checkouts) >= 8
    for file, job, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, f"{file}/{job}"


def test_no_expression_is_expanded_inside_a_shell_script() -> None:
    # `${{ }}` in `run:` is pasted into the script before bash sees it: template injection.
    scripts = [(f, j, s["run"]) for f, j, s in all_steps() if "run" in s]
    assert len(scripts) >= 10
    for file, job, script in scripts:
        assert "${{" not in script, f"{file}/{job}: pass values through env: instead"


def test_every_shell_script_parses() -> None:
    for file, job, step in all_steps():
        if "run" in step:
            check = run_script(f"bash -n <<'SCRIPT'\n{step['run']}\nSCRIPT", ROOT, {})
            assert check.returncode == 0, f"{file}/{job}: {check.stderr}"


# --- pins ---------------------------------------------------------------------------------------

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")


def uses_lines() -> list[tuple[str, str, str | None]]:
    found = []
    for path in [*workflow_files(), *action_files()]:
        for line in path.read_text().splitlines():
            if match := USES_LINE.match(line):
                found.append((path.name, match["ref"], match["comment"]))
    return found


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version_in_a_comment() -> None:
    lines = uses_lines()
    assert len(lines) >= 15
    versions: dict[str, set[tuple[str, str]]] = {}
    for file, ref, comment in lines:
        if ref.startswith("$/"):
            continue  # this repository's own action, at the workflow's own commit
        action, _, sha = ref.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", sha), f"{file}: {ref} is not pinned to a commit SHA"
        assert comment and re.fullmatch(r"v\d+\.\d+\.\d+", comment.strip()), (
            f"{file}: {ref} needs its release as a comment, e.g. `# v1.2.3`"
        )
        versions.setdefault(action, set()).add((sha, comment.strip()))
    # One version of each action across all files: an upgrade is never half done.
    assert {a: len(v) for a, v in versions.items()} == {a: 1 for a in versions}
    assert set(versions) >= {
        CHECKOUT,
        "actions/setup-python",
        PULUMI_ACTION,
        AWS_CREDENTIALS,
        "actions/upload-artifact",
        "actions/download-artifact",
    }


def test_local_actions_use_the_self_repository_form() -> None:
    local = [ref for _, ref, _ in uses_lines() if not re.match(r"^[\w.-]+/[\w.-]+", ref)]
    assert local and all(ref == "$/.github/actions/python-venv" for ref in local)


def test_the_python_venv_action_installs_only_hash_locked_requirements() -> None:
    (action,) = action_files()
    document = yaml.safe_load(action.read_text())
    script = document["runs"]["steps"][-1]["run"]
    assert "--require-hashes" in script
    assert document["runs"]["steps"][0]["with"]["python-version"] == "3.11"


# --- ci.yml -------------------------------------------------------------------------------------


def test_ci_runs_on_pull_requests_and_pushes_to_main() -> None:
    triggers = load_workflow("ci")["on"]
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["pull_request"] is None  # every PR, forks included


def test_ci_needs_no_secret_so_fork_prs_see_every_check() -> None:
    assert secrets_read("ci") == set()
    assert "vars." not in text("ci")


def test_ci_runs_tests_plans_both_stacks_audits_scans_and_lints() -> None:
    jobs = load_workflow("ci")["jobs"]
    assert step_named(jobs["test"], "Fresh hash-checked")["run"] == "bash .ci/run"
    assert jobs["plan"]["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    plan = step_named(jobs["plan"], "Plan under mocks")
    assert plan["env"]["STACK"] == "${{ matrix.stack }}"
    assert '-m infra plan --stack "$STACK"' in plan["run"]
    assert "GITHUB_STEP_SUMMARY" in plan["run"]
    assert 'exit "$status"' in plan["run"]  # a mandatory policy violation fails the check
    assert ".venv/bin/zizmor" in step_named(jobs["zizmor"], "zizmor")["run"]
    scan_checkout = step_using(jobs["secrets"], CHECKOUT)
    assert scan_checkout["with"]["fetch-depth"] == 0  # history, not just the tip
    assert step_named(jobs["secrets"], "Scan")["run"] == "bash .ci/scan-secrets"
    assert "ruff check" in step_named(jobs["lint"], "ruff")["run"]


# --- preview.yml --------------------------------------------------------------------------------


def test_preview_runs_for_same_repository_pull_requests_only() -> None:
    document = load_workflow("preview")
    assert set(document["on"]) == {"pull_request"}
    assert "infra/**" in document["on"]["pull_request"]["paths"]
    job = document["jobs"]["preview"]
    assert job["if"] == PREVIEW_GUARD
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert "environment" not in job  # so no environment secret can reach it


def test_preview_uses_pulumi_actions_with_an_edited_pr_comment() -> None:
    job = load_workflow("preview")["jobs"]["preview"]
    inputs = step_using(job, PULUMI_ACTION)["with"]
    assert inputs["command"] == "preview"
    assert inputs["stack-name"] == "${{ matrix.stack }}"
    assert inputs["comment-on-pr"] is True
    assert inputs["edit-pr-comment"] is True


def test_preview_assumes_the_read_only_preview_role_of_its_own_stack() -> None:
    job = load_workflow("preview")["jobs"]["preview"]
    assert (
        step_using(job, AWS_CREDENTIALS)["with"]["role-to-assume"] == "${{ env.PREVIEW_ROLE_ARN }}"
    )
    role = job["env"]["PREVIEW_ROLE_ARN"]
    assert "matrix.stack == 'prod' && vars.RENTAGPU_PROD_PREVIEW_ROLE_ARN" in role
    assert "matrix.stack == 'dev' && vars.RENTAGPU_DEV_PREVIEW_ROLE_ARN" in role
    assert role.endswith("|| '' }}")  # no fallback to the other stack's role


def test_no_write_credential_is_reachable_from_a_pull_request() -> None:
    for name in ("ci", "preview"):
        for credential in WRITE_CREDENTIALS:
            assert credential not in text(name), f"{name}.yml reads {credential}"
    assert secrets_read("preview") <= READ_ONLY_SECRETS


# --- deploy.yml ---------------------------------------------------------------------------------


def test_deploy_triggers_push_to_main_on_deployable_paths_and_manual_runs() -> None:
    triggers = load_workflow("deploy")["on"]
    assert set(triggers) == {"push", "workflow_dispatch"}
    assert triggers["push"]["branches"] == ["main"]
    assert set(triggers["push"]["paths"]) >= {
        "infra/**",
        "modal_app/**",
        "Pulumi*.yaml",
        ".github/workflows/deploy.yml",
    }
    choice = triggers["workflow_dispatch"]["inputs"]["environment"]
    assert choice["type"] == "choice"
    assert choice["options"] == ["dev", "prod"]
    assert choice["default"] == "dev"  # and a push, which has no inputs, deploys dev


def test_deploys_queue_per_environment_and_are_never_cancelled() -> None:
    concurrency = load_workflow("deploy")["concurrency"]
    assert concurrency["group"] == "deploy-${{ inputs.environment || 'dev' }}"
    assert concurrency["cancel-in-progress"] is False


def test_the_deploy_job_runs_in_the_chosen_environment_with_its_deploy_role() -> None:
    job = load_workflow("deploy")["jobs"]["deploy"]
    assert job["environment"]["name"] == "${{ inputs.environment || 'dev' }}"
    assert job["needs"] == "guard"
    credentials = step_using(job, AWS_CREDENTIALS)["with"]
    assert credentials["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert credentials["aws-region"] == "${{ vars.AWS_REGION }}"
    up = step_using(job, PULUMI_ACTION)
    assert up["with"]["command"] == "up"
    assert up["with"]["stack-name"] == "${{ inputs.environment || 'dev' }}"
    assert up["env"]["MODAL_TOKEN_ID"] == "${{ secrets.MODAL_TOKEN_ID }}"
    assert up["env"]["MODAL_TOKEN_SECRET"] == "${{ secrets.MODAL_TOKEN_SECRET }}"
    assert up["env"]["GITHUB_TOKEN"] == "${{ secrets.PULUMI_GITHUB_TOKEN }}"


GUARD_CASES = [
    ("prod", "refs/heads/main", 0),
    ("prod", "refs/heads/feature", 1),
    ("prod", "refs/tags/v1.0.0", 1),
    ("dev", "refs/heads/feature", 0),
    ("dev", "refs/heads/main", 0),
]


@pytest.mark.parametrize(("target", "ref", "expected"), GUARD_CASES)
def test_prod_deploys_only_from_main_before_and_after_approval(
    target: str, ref: str, expected: int, tmp_path
) -> None:
    jobs = load_workflow("deploy")["jobs"]
    before = step_named(jobs["guard"], "Refuse prod outside main")
    after = jobs["deploy"]["steps"][0]
    assert after["name"] == "Refuse prod outside main"  # the first thing the deploy job does
    assert (
        run_script(before["run"], tmp_path, {"TARGET": target, "REF": ref}).returncode == expected
    )
    assert run_script(after["run"], tmp_path, {"STACK": target, "REF": ref}).returncode == expected


def test_deploy_reads_environment_scoped_credentials_only() -> None:
    assert secrets_read("deploy") == {
        "MODAL_TOKEN_ID",
        "MODAL_TOKEN_SECRET",
        "PULUMI_GITHUB_TOKEN",
        "PULUMI_ACCESS_TOKEN",
    }
    assert not secrets_read("deploy") & READ_ONLY_SECRETS


# --- drift.yml ----------------------------------------------------------------------------------


def test_drift_runs_on_a_schedule_and_on_demand_from_main() -> None:
    document = load_workflow("drift")
    assert set(document["on"]) == {"schedule", "workflow_dispatch"}
    assert document["on"]["schedule"][0]["cron"]
    assert document["jobs"]["check"]["if"] == "github.ref == 'refs/heads/main'"
    assert "github.ref == 'refs/heads/main'" in document["jobs"]["issue"]["if"]
    assert "!cancelled()" in document["jobs"]["issue"]["if"]


def test_drift_check_uses_the_read_only_drift_role_and_read_only_tokens() -> None:
    job = load_workflow("drift")["jobs"]["check"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert step_using(job, AWS_CREDENTIALS)["with"]["role-to-assume"] == "${{ env.DRIFT_ROLE_ARN }}"
    assert "vars.RENTAGPU_PROD_DRIFT_ROLE_ARN" in job["env"]["DRIFT_ROLE_ARN"]
    assert "vars.RENTAGPU_DEV_DRIFT_ROLE_ARN" in job["env"]["DRIFT_ROLE_ARN"]
    assert secrets_read("drift") <= READ_ONLY_SECRETS
    for credential in WRITE_CREDENTIALS:
        assert credential not in text("drift")


def test_drift_command_is_a_read_only_refresh_that_expects_no_changes() -> None:
    script = step_named(load_workflow("drift")["jobs"]["check"], "pulumi refresh")["run"]
    assert 'pulumi refresh --stack "$STACK" --preview-only --expect-no-changes' in script
    assert "--json" in script
    assert "--run-program" not in script


def test_only_the_issue_job_holds_a_github_write_token() -> None:
    jobs = load_workflow("drift")["jobs"]
    issue = step_named(jobs["issue"], "Open, update or close")
    assert issue["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert "github.token" not in yaml.safe_dump(jobs["check"])
    assert not any("uses" in s and "checkout" in s["uses"] for s in jobs["issue"]["steps"])
