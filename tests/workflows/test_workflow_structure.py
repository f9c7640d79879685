"""The delivery workflows, read as data: triggers, guards, permissions, environments, pins.

Each property here is one a reviewer would otherwise have to re-check by eye on every change:
who can trigger what, which job can reach which credential, and what runs in the shell.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

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
PREVIEW_GUARD = (
    "github.event_name == 'pull_request' && "
    "github.event.pull_request.head.repo.full_name == github.repository"
)
PR_PREVIEWS = ("preview-dev", "preview-prod")
MAIN_PUSH_GUARD = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
POLICY_PACK = "infra/policy_pack"

# Every job's permissions, exactly. Anything that writes is here on purpose, and nowhere else.
JOB_PERMISSIONS = {
    ("ci", "test"): {"contents": "read"},
    ("ci", "plan"): {"contents": "read"},
    ("ci", "access"): {"contents": "read"},
    ("ci", "zizmor"): {"contents": "read"},
    ("ci", "secrets"): {"contents": "read"},
    ("ci", "lint"): {"contents": "read"},
    ("preview", "preview-dev"): {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    },
    ("preview", "preview-prod"): {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    },
    ("preview", "preview-main"): {"contents": "read", "id-token": "write"},
    ("deploy", "guard"): {},
    ("deploy", "deploy"): {"contents": "read", "id-token": "write"},
    ("drift", "check-dev"): {"contents": "read", "id-token": "write"},
    ("drift", "check-prod"): {"contents": "read", "id-token": "write"},
    ("drift", "issue"): {"issues": "write"},
    ("audit", "aws-dev"): {"contents": "read", "id-token": "write"},
    ("audit", "audit-dev"): {"contents": "read"},
    ("audit", "audit-prod"): {"contents": "read", "id-token": "write"},
    ("audit", "issue"): {"issues": "write"},
}

# Where credentials live, by the GitHub environment a job names (None: no environment, so only
# repository-level names). Every `secrets.X` / `vars.X` a job reads must be in its row. Whether
# what they reach keeps the invariant is `python -m infra access`'s to say (tests/tools).
DEPLOY_ENVIRONMENT = "${{ inputs.environment || 'dev' }}"  # `dev` or `prod`: the deploy job
PROD_READONLY = "prod-readonly"
# Repository level: readable by any workflow on any branch. Read-only names only: each stack's PR
# preview role and region, dev's drift role, each stack's Pulumi read token, dev's Modal read
# token, and the one read-only GitHub token.
REPOSITORY_LEVEL = {
    "vars.PULUMI_BACKEND_URL",
    "vars.RENTAGPU_DEV_PREVIEW_ROLE_ARN",
    "vars.RENTAGPU_DEV_DRIFT_ROLE_ARN",
    "vars.RENTAGPU_DEV_AWS_REGION",
    "vars.RENTAGPU_PROD_PREVIEW_ROLE_ARN",
    "vars.RENTAGPU_PROD_AWS_REGION",
    "secrets.RENTAGPU_DEV_MODAL_READ_TOKEN_ID",
    "secrets.RENTAGPU_DEV_MODAL_READ_TOKEN_SECRET",
    "secrets.RENTAGPU_DEV_PULUMI_READ_TOKEN",
    "secrets.RENTAGPU_PROD_PULUMI_READ_TOKEN",
    "secrets.RENTAGPU_GITHUB_READ_TOKEN",
}
# What jobs in an environment also read from the repository: the backend and the GitHub read token.
SHARED = {"vars.PULUMI_BACKEND_URL", "secrets.RENTAGPU_GITHUB_READ_TOKEN"}
CREDENTIALS_BY_ENVIRONMENT: dict[str | None, set[str]] = {
    None: REPOSITORY_LEVEL,
    # prod's read-only credentials: main only, no reviewers.
    PROD_READONLY: SHARED
    | {
        "vars.AWS_DRIFT_ROLE_ARN",
        "vars.AWS_REGION",
        "secrets.MODAL_READ_TOKEN_ID",
        "secrets.MODAL_READ_TOKEN_SECRET",
        "secrets.PULUMI_ACCESS_TOKEN",  # a token that can only read the prod stack
    },
    # The deploy credentials; prod's behind required reviewers.
    DEPLOY_ENVIRONMENT: SHARED
    | {
        "vars.AWS_DEPLOY_ROLE_ARN",
        "vars.AWS_REGION",
        "secrets.MODAL_TOKEN_ID",
        "secrets.MODAL_TOKEN_SECRET",
        "secrets.PULUMI_ACCESS_TOKEN",
    },
}
# The environment each job names; every other job names none.
JOB_ENVIRONMENTS = {
    ("preview", "preview-main"): PROD_READONLY,
    ("deploy", "deploy"): DEPLOY_ENVIRONMENT,
    ("drift", "check-prod"): PROD_READONLY,
    ("audit", "audit-prod"): PROD_READONLY,
}

# Credentials that can change something. None may appear outside the deploy workflow, and the
# admin's GitHub token (the name issue 10 found in deploy.yml) in no workflow at all.
WRITE_CREDENTIALS = (
    "vars.AWS_DEPLOY_ROLE_ARN",
    "secrets.MODAL_TOKEN_ID",
    "secrets.MODAL_TOKEN_SECRET",
)
ADMIN_GITHUB_TOKEN = "PULUMI_GITHUB_TOKEN"
CREDENTIAL_NAME = re.compile(r"\b(?:secrets|vars)\.[A-Za-z0-9_]+")


def text(name: str) -> str:
    return (ROOT / ".github" / "workflows" / f"{name}.yml").read_text()


def secrets_read(name: str) -> set[str]:
    return set(re.findall(r"secrets\.([A-Z0-9_]+)", text(name)))


def strings(value: object) -> Iterator[str]:
    """Every string in a parsed YAML value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def credentials_read(job: dict) -> set[str]:
    return {name for string in strings(job) for name in CREDENTIAL_NAME.findall(string)}


def environment_of(job: dict) -> str | None:
    environment = job.get("environment")
    return environment.get("name") if isinstance(environment, dict) else environment


def all_jobs() -> Iterator[tuple[str, str, dict]]:
    for name in WORKFLOW_NAMES:
        for job_id, job in load_workflow(name)["jobs"].items():
            yield name, job_id, job


# Every workflow.


def test_the_five_workflows_exist() -> None:
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
    assert with_token == {
        ("preview", "preview-dev"),
        ("preview", "preview-prod"),
        ("preview", "preview-main"),
        ("deploy", "deploy"),
        ("drift", "check-dev"),
        ("drift", "check-prod"),
        ("audit", "aws-dev"),
        ("audit", "audit-prod"),
    }
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


# Credentials: who can read what.


def test_each_job_names_exactly_its_listed_environment() -> None:
    seen = {(name, job_id): environment_of(job) for name, job_id, job in all_jobs()}
    assert {key: env for key, env in seen.items() if env is not None} == JOB_ENVIRONMENTS


def test_each_job_reads_only_credentials_that_live_where_it_runs() -> None:
    # A job without an environment that read an environment's name (say secrets.MODAL_READ_TOKEN_ID)
    # would silently get a repository secret of that name, if anyone ever created one.
    for name, job_id, job in all_jobs():
        allowed = CREDENTIALS_BY_ENVIRONMENT[environment_of(job)]
        assert credentials_read(job) <= allowed, f"{name}/{job_id}"


def test_every_job_that_reads_a_prod_credential_runs_in_a_prod_environment() -> None:
    # Every name outside the repository-level (dev) list lives in an environment; the prod ones
    # only in `prod-readonly` (main only) or `prod` (main only, reviewers).
    readers = set()
    for name, job_id, job in all_jobs():
        if credentials_read(job) - REPOSITORY_LEVEL:
            readers.add((name, job_id))
            assert environment_of(job) in (PROD_READONLY, DEPLOY_ENVIRONMENT), f"{name}/{job_id}"
    assert readers == set(JOB_ENVIRONMENTS)
    options = load_workflow("deploy")["on"]["workflow_dispatch"]["inputs"]["environment"]["options"]
    assert options == ["dev", "prod"]  # the deploy job's environment is `dev` or `prod`, no other


def test_the_only_repository_level_prod_names_are_the_pr_preview_s_and_only_it_reads_them():
    """prod's credentials were once repository-level with a deploy token inside; what is left at
    that level for prod is the PR preview's: a role that only looks up the OIDC providers, its
    region, and a Pulumi token that reads prod's state, which decrypts into nothing that writes
    (tests/tools/test_access.py)."""
    prod_level = {c for c in REPOSITORY_LEVEL if "RENTAGPU_PROD_" in c}
    assert prod_level == {
        "vars.RENTAGPU_PROD_PREVIEW_ROLE_ARN",
        "vars.RENTAGPU_PROD_AWS_REGION",
        "secrets.RENTAGPU_PROD_PULUMI_READ_TOKEN",
    }
    for name, job_id, job in all_jobs():
        if credentials_read(job) & prod_level:
            assert (name, job_id) == ("preview", "preview-prod")


def test_no_write_credential_is_read_outside_the_deploy_workflow() -> None:
    for name in WORKFLOW_NAMES:
        assert ADMIN_GITHUB_TOKEN not in text(name), f"{name}.yml names the admin's GitHub token"
        if name == "deploy":
            continue
        for credential in WRITE_CREDENTIALS:
            assert credential not in text(name), f"{name}.yml reads {credential}"


def test_every_pulumi_preview_and_up_runs_the_policy_pack() -> None:
    commands = []
    for name, job_id, job in all_jobs():
        for step in job["steps"]:
            if step.get("uses", "").split("@")[0] != PULUMI_ACTION:
                continue
            inputs = step.get("with", {})
            if "command" not in inputs:
                assert name == "drift", f"{name}/{job_id}: only drift installs the bare CLI"
                continue
            commands.append((name, job_id, inputs["command"]))
            assert inputs.get("policyPacks") == POLICY_PACK, f"{name}/{job_id}"
    assert sorted(commands) == [
        ("deploy", "deploy", "up"),
        ("preview", "preview-dev", "preview"),
        ("preview", "preview-main", "preview"),
        ("preview", "preview-prod", "preview"),
    ]


# Pins.

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
    """`$/` resolves to this repository at the running commit, so what runs cannot be changed by an
    earlier step's edit of the checkout. GitHub documents it as generally available on github.com
    and recommended (changelog 2026-07-30, "Reference same-repository actions with self-repository
    syntax"; docs.github.com, Workflow syntax, jobs.<job_id>.steps[*].uses), needing runner 2.336.0
    or newer; it is not on GitHub Enterprise Server, where `./` is the form (README). zizmor's
    `self-repository` audit flags `./`."""
    local = [ref for _, ref, _ in uses_lines() if not re.match(r"^[\w.-]+/[\w.-]+", ref)]
    assert local and all(ref == "$/.github/actions/python-venv" for ref in local)


def test_the_python_venv_action_installs_only_hash_locked_requirements() -> None:
    (action,) = action_files()
    document = yaml.safe_load(action.read_text())
    script = document["runs"]["steps"][-1]["run"]
    assert "--require-hashes" in script
    assert document["runs"]["steps"][0]["with"]["python-version"] == "3.11"


# Ci.yml.


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
    access = step_named(jobs["access"], "No credential that skips")["run"]
    assert "for stack in dev prod" in access and "-m infra access --stack" in access
    assert 'exit "$status"' in access  # a violation of the invariant fails the check
    scan_checkout = step_using(jobs["secrets"], CHECKOUT)
    assert scan_checkout["with"]["fetch-depth"] == 0  # history, not just the tip
    assert step_named(jobs["secrets"], "Scan")["run"] == "bash .ci/scan-secrets"
    assert "ruff check" in step_named(jobs["lint"], "ruff")["run"]


# Preview.yml.


def test_preview_runs_for_pull_requests_and_pushes_to_main_on_the_same_paths() -> None:
    triggers = load_workflow("preview")["on"]
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    assert "infra/**" in triggers["pull_request"]["paths"]
    assert triggers["push"]["paths"] == triggers["pull_request"]["paths"]


def test_preview_has_no_stack_matrix_each_job_previews_one_stack() -> None:
    jobs = load_workflow("preview")["jobs"]
    assert set(jobs) == {"preview-dev", "preview-prod", "preview-main"}
    for job_id, job in jobs.items():
        assert "strategy" not in job, job_id
        assert "matrix." not in "".join(strings(job)), job_id
    for job_id, stack in (
        ("preview-dev", "dev"),
        ("preview-prod", "prod"),
        ("preview-main", "prod"),
    ):
        assert step_using(jobs[job_id], PULUMI_ACTION)["with"]["stack-name"] == stack
        assert jobs[job_id]["env"]["STACK"] == stack


def test_both_stacks_are_previewed_on_pull_requests_from_this_repository_only() -> None:
    jobs = load_workflow("preview")["jobs"]
    for job_id in PR_PREVIEWS:
        assert jobs[job_id]["if"] == PREVIEW_GUARD  # forks get no OIDC token and no secrets
        assert "environment" not in jobs[job_id]
    main = jobs["preview-main"]
    assert main["if"] == MAIN_PUSH_GUARD
    assert environment_of(main) == PROD_READONLY  # main-only branch policy, enforced by GitHub
    assert "pull-requests" not in main["permissions"]


def test_the_two_pr_previews_differ_only_in_their_stack() -> None:
    jobs = load_workflow("preview")["jobs"]

    def as_dev(job: dict) -> str:
        return yaml.safe_dump(job).replace("RENTAGPU_PROD_", "RENTAGPU_DEV_").replace("prod", "dev")

    assert as_dev(jobs["preview-prod"]) == yaml.safe_dump(jobs["preview-dev"])


def test_pr_previews_comment_on_the_pr_and_the_main_preview_writes_the_summary() -> None:
    jobs = load_workflow("preview")["jobs"]
    for job_id in PR_PREVIEWS:
        inputs = step_using(jobs[job_id], PULUMI_ACTION)["with"]
        assert inputs["command"] == "preview"
        assert inputs["comment-on-pr"] is True
        assert inputs["edit-pr-comment"] is True
    main = step_using(jobs["preview-main"], PULUMI_ACTION)["with"]
    assert main["comment-on-summary"] is True
    assert "comment-on-pr" not in main  # there is no pull request after the merge


@pytest.mark.parametrize(("job_id", "upper"), [("preview-dev", "DEV"), ("preview-prod", "PROD")])
def test_a_pr_preview_uses_its_stack_s_read_only_repository_credentials_and_no_modal_token(
    job_id: str, upper: str
) -> None:
    """A preview's check and diff call nothing in Modal, so no Modal token reaches PR code."""
    job = load_workflow("preview")["jobs"][job_id]
    credentials = step_using(job, AWS_CREDENTIALS)["with"]
    assert credentials["role-to-assume"] == f"${{{{ vars.RENTAGPU_{upper}_PREVIEW_ROLE_ARN }}}}"
    assert credentials["aws-region"] == f"${{{{ vars.RENTAGPU_{upper}_AWS_REGION }}}}"
    env = step_using(job, PULUMI_ACTION)["env"]
    assert env["PULUMI_ACCESS_TOKEN"] == f"${{{{ secrets.RENTAGPU_{upper}_PULUMI_READ_TOKEN }}}}"
    assert env["GITHUB_TOKEN"] == "${{ secrets.RENTAGPU_GITHUB_READ_TOKEN }}"
    assert not [c for c in credentials_read(job) if "MODAL" in c]


def test_the_main_preview_uses_prod_readonly_s_credentials_and_the_drift_role() -> None:
    job = load_workflow("preview")["jobs"]["preview-main"]
    credentials = step_using(job, AWS_CREDENTIALS)["with"]
    assert credentials["role-to-assume"] == "${{ vars.AWS_DRIFT_ROLE_ARN }}"
    assert credentials["aws-region"] == "${{ vars.AWS_REGION }}"
    env = step_using(job, PULUMI_ACTION)["env"]
    assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert env["GITHUB_TOKEN"] == "${{ secrets.RENTAGPU_GITHUB_READ_TOKEN }}"
    assert not [c for c in credentials_read(job) if "MODAL" in c]


@pytest.mark.parametrize("job_id", ["preview-dev", "preview-prod", "preview-main"])
def test_each_preview_checks_its_settings_first(job_id: str) -> None:
    job = load_workflow("preview")["jobs"][job_id]
    assert job["steps"][0]["name"].startswith("Check ")
    assert 'exit "$problems"' in job["steps"][0]["run"]


def test_the_pr_preview_jobs_document_that_actions_may_not_approve_prs() -> None:
    # They run PR code with `pull-requests: write`; that setting would let the code approve itself.
    # The owner stack declares it off (WorkflowRepositoryPermissions, tests/stages/github).
    assert "Allow GitHub Actions to create and approve pull requests" in text("preview")
    assert "stays OFF" in text("preview")


def test_no_write_credential_is_reachable_from_a_pull_request() -> None:
    jobs = load_workflow("preview")["jobs"]
    for job_id in PR_PREVIEWS:
        assert credentials_read(jobs[job_id]) <= REPOSITORY_LEVEL
        assert "secrets.PULUMI_ACCESS_TOKEN" not in "".join(strings(jobs[job_id]))
    for credential in WRITE_CREDENTIALS:
        assert credential not in text("ci") and credential not in text("preview")


# Deploy.yml.


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
    # A read-only GitHub token: the governance plane is never applied from CI.
    assert up["env"]["GITHUB_TOKEN"] == "${{ secrets.RENTAGPU_GITHUB_READ_TOKEN }}"


def test_the_deploy_applies_the_delivery_plane_only_then_warns_about_governance() -> None:
    job = load_workflow("deploy")["jobs"]["deploy"]
    planes = step_named(job, "Delivery plane targets")
    assert planes["id"] == "planes"
    assert '.venv/bin/python -m infra planes --stack "$STACK" --targets' in planes["run"]
    up = step_using(job, PULUMI_ACTION)
    assert up["with"]["target"] == "${{ steps.planes.outputs.targets }}"
    assert "target-dependents" not in up["with"]
    waiting = step_named(job, "Governance changes waiting for an admin")
    assert 'pulumi preview --stack "$STACK" --expect-no-changes' in waiting["run"]
    assert "::warning::" in waiting["run"] and "exit" not in waiting["run"]
    assert waiting["env"] == up["env"] | {}  # the same credentials, nothing more
    names = [s.get("name") for s in job["steps"]]
    assert names.index("Delivery plane targets") < names.index("pulumi up (delivery plane)")


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
        "PULUMI_ACCESS_TOKEN",
        "RENTAGPU_GITHUB_READ_TOKEN",
    }
    assert {f"secrets.{n}" for n in secrets_read("deploy")} & REPOSITORY_LEVEL == {
        "secrets.RENTAGPU_GITHUB_READ_TOKEN"
    }


# Drift.yml.


def test_drift_runs_on_a_schedule_and_on_demand_from_main() -> None:
    document = load_workflow("drift")
    assert set(document["on"]) == {"schedule", "workflow_dispatch"}
    assert document["on"]["schedule"][0]["cron"]
    for check in ("check-dev", "check-prod"):
        assert document["jobs"][check]["if"] == "github.ref == 'refs/heads/main'"
    assert "github.ref == 'refs/heads/main'" in document["jobs"]["issue"]["if"]
    assert "!cancelled()" in document["jobs"]["issue"]["if"]
    assert document["jobs"]["issue"]["needs"] == ["check-dev", "check-prod"]
    assert document["jobs"]["issue"]["strategy"]["matrix"]["stack"] == ["dev", "prod"]


def test_drift_checks_use_each_stack_s_read_only_drift_role_and_tokens() -> None:
    jobs = load_workflow("drift")["jobs"]
    dev, prod = jobs["check-dev"], jobs["check-prod"]
    assert dev["env"]["STACK"] == "dev" and prod["env"]["STACK"] == "prod"
    assert "environment" not in dev  # dev's drift role trusts ref:refs/heads/main
    assert environment_of(prod) == PROD_READONLY  # prod's trusts environment:prod-readonly
    role = step_using(dev, AWS_CREDENTIALS)["with"]["role-to-assume"]
    assert role == "${{ vars.RENTAGPU_DEV_DRIFT_ROLE_ARN }}"
    role = step_using(prod, AWS_CREDENTIALS)["with"]["role-to-assume"]
    assert role == "${{ vars.AWS_DRIFT_ROLE_ARN }}"
    dev_env = step_named(dev, "pulumi refresh")["env"]
    assert dev_env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.RENTAGPU_DEV_PULUMI_READ_TOKEN }}"
    assert dev_env["MODAL_TOKEN_ID"] == "${{ secrets.RENTAGPU_DEV_MODAL_READ_TOKEN_ID }}"
    prod_env = step_named(prod, "pulumi refresh")["env"]
    assert prod_env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert prod_env["MODAL_TOKEN_ID"] == "${{ secrets.MODAL_READ_TOKEN_ID }}"
    assert prod_env["GITHUB_TOKEN"] == "${{ secrets.RENTAGPU_GITHUB_READ_TOKEN }}"
    for credential in WRITE_CREDENTIALS:
        assert credential not in text("drift")


def test_both_drift_checks_run_the_same_steps_and_script() -> None:
    jobs = load_workflow("drift")["jobs"]
    dev, prod = jobs["check-dev"]["steps"], jobs["check-prod"]["steps"]
    assert [s.get("uses") for s in dev] == [s.get("uses") for s in prod]
    assert (
        step_named(jobs["check-dev"], "pulumi refresh")["run"]
        == (step_named(jobs["check-prod"], "pulumi refresh")["run"])
    )
    assert step_using(jobs["check-dev"], "actions/upload-artifact")["with"]["name"] == "drift-dev"
    upload = step_using(jobs["check-prod"], "actions/upload-artifact")["with"]
    assert upload["name"] == "drift-prod"


def test_drift_command_is_a_read_only_refresh_that_expects_no_changes() -> None:
    script = step_named(load_workflow("drift")["jobs"]["check-prod"], "pulumi refresh")["run"]
    assert 'pulumi refresh --stack "$STACK" --preview-only --expect-no-changes' in script
    assert "--json" in script
    assert "--run-program" not in script


def test_only_the_issue_job_holds_a_github_write_token() -> None:
    jobs = load_workflow("drift")["jobs"]
    issue = step_named(jobs["issue"], "Open, update or close")
    assert issue["env"]["GH_TOKEN"] == "${{ github.token }}"
    for check in ("check-dev", "check-prod"):
        assert "github.token" not in yaml.safe_dump(jobs[check])
    assert not any("uses" in s and "checkout" in s["uses"] for s in jobs["issue"]["steps"])
