"""Which runbook kinds cover each credential of the graph (`python -m infra access`): the
`incident` kind, and the `rotate` command or why there is none.

`lifecycle` knows the graph's credentials by their names (`infra.tools.access.build` and
`handed_out` spell them); a credential it does not know raises, so a new kind of credential in the
graph fails `tests/tools/runbook/test_coverage.py` until the runbook covers it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from infra.tools.access.model import Credential


@dataclass(frozen=True)
class Lifecycle:
    incident: str  # `incident --credential KIND`
    rotate: str | None  # the `python -m infra` arguments that rotate it
    why_not: str = ""  # why there is no rotate command


def _ci_token(match: re.Match, credential: Credential, stack: str) -> Lifecycle:
    purpose, owner = match.group(1), match.group(2)
    if purpose == "deploy" and "(from stack config (the fallback))" in credential.held_in:
        rotate = f"rotate modal-token --stack {owner} --create-service-user NAME --revoke-old"
    else:
        rotate = f"rotate ci-tokens --stack {owner}"
    return Lifecycle(f"modal-{purpose}-token", rotate)


def _pulumi_token(match: re.Match, credential: Credential, stack: str) -> Lifecycle:
    owner, access, where = match.groups()
    scope = "write" if access == "write" else ("preview" if where == "repository" else "read")
    return Lifecycle("pulumi-token", f"rotate pulumi-token --stack {owner} --scope {scope}")


def _none(incident: str, why: str) -> Callable[[re.Match, Credential, str], Lifecycle]:
    return lambda match, credential, stack: Lifecycle(incident, None, why)


PERSONAL = "a person's own credential: they make a new one and revoke the old (see incident)"
RULES: tuple[tuple[re.Pattern, Callable[[re.Match, Credential, str], Lifecycle]], ...] = (
    (re.compile(r"Modal (deploy|read) token of (\w+)"), _ci_token),
    (
        re.compile(r"Modal service user '.+' of \w+"),
        _none(
            "modal-service-user",
            "its token is made and kept outside this project: replace the service user in "
            "modalServiceUserRoles",
        ),
    ),
    (
        re.compile(r"AWS access key of rentagpu-(\w+)-runtime"),
        lambda m, c, s: Lifecycle("aws-key", f"rotate aws-key --stack {c.stack}"),
    ),
    (
        re.compile(r"AWS role rentagpu-\w+-\w+"),
        _none("aws-role", "assumed through OIDC: no long-lived secret, sessions last 1 hour"),
    ),
    (
        re.compile(r"stack \w+: config and state \(decryption\)"),
        _none(
            "stack-secrets",
            "what it holds is rotated by its own kind; the key by `pulumi stack "
            "change-secrets-provider`",
        ),
    ),
    (re.compile(r"Pulumi token of stack (\w+) \((write|read), ([\w-]+)\)"), _pulumi_token),
    (
        re.compile(r"GitHub read token"),
        lambda m, c, s: Lifecycle("github-read-token", f"rotate github-read-token --stack {s}"),
    ),
    (re.compile(r"GitHub admin token \w+ in a workflow"), _none("github-admin-token", PERSONAL)),
    (re.compile(r"the admin's GitHub token"), _none("github-admin-token", PERSONAL)),
    (re.compile(r"a workspace manager's Modal token"), _none("modal-admin-token", PERSONAL)),
    (re.compile(r"the admin's AWS credentials"), _none("aws-admin-credentials", PERSONAL)),
    (
        re.compile(r"job token of .+"),
        _none("job-token", "GitHub issues one per job and revokes it when the job ends"),
    ),
)


def lifecycle(credential: Credential, stack: str) -> Lifecycle:
    """How the runbook covers `credential`, for a command run against `stack`."""
    for pattern, make in RULES:
        match = pattern.match(credential.name)
        if match:
            return make(match, credential, stack)
    raise KeyError(
        f"the runbook does not know the credential {credential.name!r}: give it an incident "
        "kind (and a rotate kind, or the reason it needs none) in infra/tools/runbook/coverage.py"
    )


def overview(credentials: list[Credential], stack: str) -> str:
    """`incident --stack STACK` without --credential: every credential of the stack, and what
    to run for it."""
    lines = [f"Every credential of stack '{stack}' (python -m infra access), and what to run:"]
    for credential in credentials:
        covered = lifecycle(credential, stack)
        rotate = (
            f"python -m infra {covered.rotate}"
            if covered.rotate
            else f"no rotate command: {covered.why_not}"
        )
        lines += [
            "",
            credential.name,
            f"  lives in: {credential.held_in}",
            f"  incident: python -m infra incident --stack {stack} --credential {covered.incident}",
            f"  rotate:   {rotate}",
        ]
    return "\n".join(lines)
