"""The runbook covers the credential graph (`python -m infra access`): every credential of the
committed stacks, and of variants that bring in the other kinds (the fallback deploy token, an
access key, configured service users, an admin token in a workflow), has an `incident` kind and a
`rotate` command or a stated reason for none; and every GitHub secret the runbook tells a user to
set or look at is one the workflows read, in the place they read it from, and the other way round."""

from __future__ import annotations

import re
import shlex

import pytest

from infra.core import names
from infra.tools.access.graph import Graph
from infra.tools.access.invariant import credential_graph
from infra.tools.access.report import stack_graph
from infra.tools.access.stack import stack_facts
from infra.tools.access.workflows import JobUse, job_uses
from infra.tools.cli import build_parser
from infra.tools.offline import render
from infra.tools.plan import PROJECT_DIR, load_config
from infra.tools.runbook.coverage import lifecycle
from infra.tools.runbook.incident_kinds import CREDENTIALS
from infra.tools.runbook.places import PULUMI_SCOPES
from infra.tools.runbook.rotate import KINDS as ROTATE_KINDS
from tests.stacks import FALLBACK_TOKEN, raw_config, stack_config
from tests.tools.runbook.support import InProcessStack, run_cli

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
STACKS = ("dev", "prod")


def variant_graph() -> Graph:
    """The stacks with every optional kind of credential, and a workflow job that reads the
    admin's GitHub token (what `access` reports as a violation, but the runbook must still cover)."""
    facts = {
        "prod": stack_facts(render(stack_config("prod", **FALLBACK_TOKEN)), "prod"),
        "dev": stack_facts(
            render(
                stack_config(
                    "dev", awsAuth="access-key", modalServiceUserRoles={"notebooks": "viewer"}
                )
            ),
            "dev",
        ),
    }
    admin_job = JobUse(
        workflow="deploy.yml",
        job="rogue",
        triggers=("push",),
        push_branches=("main",),
        environments=("dev",),
        secrets=frozenset({names.GITHUB_ADMIN_TOKEN_SECRET}),
        variables=frozenset(),
        id_token=False,
        stack="dev",
    )
    return credential_graph(facts, [*job_uses(WORKFLOWS), admin_job])


@pytest.fixture(scope="module")
def graphs() -> dict[str, Graph]:
    return {"committed": stack_graph(), "variants": variant_graph()}


def test_every_credential_has_an_incident_kind_and_a_rotate_command_or_a_reason(graphs) -> None:
    incidents, rotations = set(), set()
    for graph in graphs.values():
        for credential in graph.credentials.values():
            stack = credential.stack if credential.stack in STACKS else "prod"
            covered = lifecycle(credential, stack)  # raises for a credential it does not know
            assert covered.incident in CREDENTIALS, credential.name
            incidents.add(covered.incident)
            if covered.rotate is None:
                assert covered.why_not, f"{credential.name}: no rotate command and no reason"
                continue
            args = build_parser().parse_args(shlex.split(covered.rotate))  # a command that runs
            assert args.command == "rotate", covered.rotate
            rotations.add(args.credential)
    # every kind the commands offer covers something the graph has, and nothing is left out
    assert incidents == set(CREDENTIALS)
    assert rotations == set(ROTATE_KINDS)


@pytest.mark.parametrize("stack", STACKS)
def test_the_incident_overview_lists_every_credential_of_the_stack(stack: str) -> None:
    from infra.tools.access.report import access_document

    document = access_document(stack_graph(), stack)
    code, output = run_cli(["incident", "--stack", stack], {})
    assert code == 0
    for credential in document["credentials"]:
        assert f"\n{credential['name']}\n" in output
    assert output.count("  incident: python -m infra incident") == len(document["credentials"])
    assert "no rotate command: assumed through OIDC: no long-lived secret" in output


# What the runbook prints about a GitHub secret, in the forms it uses.
_PAIR = r"(?P<names>[A-Z][A-Z0-9_]+(?: and [A-Z][A-Z0-9_]+)?)"
_ENVIRONMENT = re.compile(rf"environment secrets? {_PAIR} of environment '(?P<env>[\w-]+)'")
_REPOSITORY = re.compile(rf"repository secrets? {_PAIR}")
_GH_SET = re.compile(r"gh secret set (?P<name>[A-Z][A-Z0-9_]+)(?: --env (?P<env>[\w-]+))?")


def printed_places(text: str) -> set[tuple[str | None, str]]:
    found = set()
    for match in _ENVIRONMENT.finditer(text):
        found |= {(match["env"], n) for n in match["names"].split(" and ")}
    for match in _REPOSITORY.finditer(text):
        found |= {(None, n) for n in match["names"].split(" and ")}
    for match in _GH_SET.finditer(text):
        found.add((match["env"], match["name"]))
    return found


def runbook_text(stack: str) -> str:
    """Everything the runbook prints about the stack's credentials: each incident listing, and
    the steps of each rotation a person carries out."""
    config = raw_config(stack, githubOwner="example-org")
    stacks = {s: InProcessStack(s, config if s == stack else raw_config(s)) for s in STACKS}
    texts = []
    for kind in CREDENTIALS:
        code, output = run_cli(["incident", "--stack", stack, "--credential", kind], stacks)
        assert code == 0, output
        texts.append(output)
    for scope in PULUMI_SCOPES:
        code, output = run_cli(
            ["rotate", "pulumi-token", "--stack", stack, "--scope", scope], stacks
        )
        texts.append(output)
    texts.append(run_cli(["rotate", "github-read-token", "--stack", stack], stacks)[1])
    return "\n".join(texts)


def workflow_places(graph: Graph) -> set[tuple[str | None, str]]:
    """Where GitHub takes each secret a workflow job reads from, for each environment it runs in
    (an environment's own secret of that name, else the repository's)."""
    return {
        (graph.secret_location(job, env, {secret}), secret)
        for job in graph.jobs
        for secret in job.secrets
        for env in job.environments
    }


def test_the_secrets_the_runbook_names_are_the_ones_the_workflows_read_where_they_read_them(
    graphs,
) -> None:
    printed = set().union(*(printed_places(runbook_text(stack)) for stack in STACKS))
    read = workflow_places(graphs["committed"])
    assert printed - read == set(), "printed, but no workflow reads it there"
    assert read - printed == set(), "read by a workflow, but the runbook never names it there"


def held_places(held_in: str) -> set[tuple[str | None, str]]:
    """The graph's `held_in` of a GitHub secret: "GitHub environment 'E': A and B (...)" or
    "GitHub repository secrets: A (...)"."""
    if match := re.match(rf"GitHub environment '(?P<env>[\w-]+)': {_PAIR}", held_in):
        return {(match["env"], n) for n in match["names"].split(" and ")}
    if match := re.match(rf"GitHub repository secrets: {_PAIR}", held_in):
        return {(None, n) for n in match["names"].split(" and ")}
    return set()


@pytest.mark.parametrize("stack", STACKS)
def test_each_credential_s_incident_names_the_github_secrets_it_is_held_in(stack, graphs):
    config = load_config(stack).raw
    stacks = {s: InProcessStack(s, config if s == stack else raw_config(s)) for s in STACKS}
    checked = 0
    for credential in graphs["committed"].credentials.values():
        places = held_places(credential.held_in)
        if not places or credential.stack not in (stack, "repository"):
            continue
        kind = lifecycle(credential, stack).incident
        _, output = run_cli(["incident", "--stack", stack, "--credential", kind], stacks)
        assert places <= printed_places(output), (credential.name, output)
        checked += 1
    assert checked >= 5  # deploy and read tokens, Pulumi tokens, the GitHub read token


@pytest.mark.parametrize("fallback", [False, True])
def test_the_audit_s_fix_commands_for_ci_secrets_are_runbook_commands_that_exist(
    graphs, fallback: bool
) -> None:
    """The audit (`github-secret-due`, `modal-service-user-*`) tells a user what to run: a
    command of this runbook, never one that was removed."""
    from infra.tools.audit import github as audit_github
    from infra.tools.audit import modal_users
    from infra.tools.audit.findings import AuditScope
    from tests.tools.audit.support import NOW

    commands = {}
    for stack in STACKS:
        config = stack_config(stack, **(FALLBACK_TOKEN if fallback else {}))
        scope = AuditScope(config, NOW, 7, 90)
        # the secret lists the audit reads for the stack, as it labels them
        for where, path, prefix in audit_github._secret_places("/repos/o/r", stack):
            location = path.split("/environments/")[1].split("/")[0] if prefix is None else None
            for place, secret in workflow_places(graphs["committed"]):
                if place == location and secret.startswith(prefix or ""):
                    commands[(stack, location, secret)] = audit_github._rotation_command(
                        scope, secret, where
                    )
        for purpose, role in names.CI_TOKEN_ROLES.items():
            user = names.ci_service_user(stack, purpose, 1)
            commands[(stack, "modal", user)] = modal_users._rotation_command(scope, user, role)
        commands[(stack, "modal", "by hand")] = modal_users._rotation_command(
            scope, "notebooks", "viewer"
        )
    for key, command in commands.items():
        assert command.startswith("python -m infra "), (key, command)
        build_parser().parse_args(shlex.split(command.removeprefix("python -m infra ")))
    assert commands[("prod", "prod", "MODAL_TOKEN_ID")] == (
        "python -m infra rotate modal-token --stack prod --create-service-user NAME"
        if fallback
        else "python -m infra rotate ci-tokens --stack prod"
    )
    assert commands[("prod", "prod-readonly", "PULUMI_ACCESS_TOKEN")].endswith("--scope read")
    assert commands[("dev", None, "RENTAGPU_DEV_PULUMI_READ_TOKEN")].endswith("--scope preview")


def test_the_doctor_names_an_incident_kind_that_exists_for_a_ci_token_on_a_laptop() -> None:
    from infra.tools.doctor.modal_checks import _ci_kind

    assert _ci_kind(names.ci_service_user("prod", "read", 3)) == "modal-read-token"
    assert _ci_kind(names.ci_service_user("dev", "deploy", 1)) == "modal-deploy-token"
    assert _ci_kind("rentagpu-ci-fallback-20261129") in CREDENTIALS


def test_the_readme_s_runbook_names_every_kind_and_no_removed_one() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    start = readme.index("## Runbook: rotation and incidents")
    section = readme[start : readme.index("\n## ", start + 1)]
    for kind in CREDENTIALS:
        assert f"`{kind}`" in section, kind
    for kind in ROTATE_KINDS:
        assert f"rotate {kind} --stack" in section, kind
    for removed in ("modal-read-token --stack", "--credential modal-token", "`github-token`"):
        assert removed not in section
