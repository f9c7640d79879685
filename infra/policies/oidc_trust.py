"""Policy `oidc-trust-pinned`: every web-identity trust pins its audience and subject."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from infra.core import names
from infra.core import resource_types as types
from infra.policies.documents import (
    is_allow,
    parse_document,
    principal_is_anyone,
    statement_label,
)
from infra.policies.model import (
    PolicyContext,
    Resource,
    as_list,
)

_EXPECTED_AUDIENCE = {
    names.GITHUB_OIDC_HOST: names.GITHUB_OIDC_AUDIENCE,
    names.MODAL_OIDC_HOST: names.MODAL_OIDC_AUDIENCE,
}
# The only GitHub subject form the program builds (names.github_subject): the repository and its
# owner by numeric id, then the job's context.
_GITHUB_SUBJECT = re.compile(
    r"^repository_owner_id:(?P<owner>[1-9][0-9]*):repository_id:(?P<repository>[1-9][0-9]*):"
    r"(?:environment:(?P<environment>[A-Za-z0-9._-]+)|pull_request|ref:refs/heads/main)$"
)
_MODAL_SUBJECT = re.compile(
    r"^modal:workspace_id:ac-[A-Za-z0-9]+:environment_name:(?P<environment>[A-Za-z0-9._-]+)"
    r":app_name:[A-Za-z0-9._-]+:function_name:[A-Za-z0-9._-]+:container_id:(?P<container>[^:]+)$"
)
_WILDCARDS = re.compile(r"[*?]")


def _oidc_host(federated: str) -> str:
    # arn:aws:iam::ACCOUNT:oidc-provider/HOST; other federated principals are used as they are.
    return federated.split(":oidc-provider/", 1)[-1].lower()


def _condition_entries(condition: Any, key: str) -> list[tuple[str, list[Any]]]:
    """[(operator, values)] for every condition on `key` (AWS compares keys case-insensitively)."""
    entries: list[tuple[str, list[Any]]] = []
    if not isinstance(condition, Mapping):
        return entries
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            continue
        for condition_key, values in block.items():
            if isinstance(condition_key, str) and condition_key.lower() == key:
                entries.append((str(operator), as_list(values)))
    return entries


def _trusted_environments(environment: str) -> tuple[str, str | None]:
    """The GitHub environments a stack's roles may trust: its own, and its read-only one if the
    stack has one (prod). Trusting one the program does not create would trust an environment
    GitHub creates unprotected the first time a workflow names it."""
    return environment, names.readonly_environment(environment)


def _check_subject(
    host: str, operator: str, subject: Any, ctx: PolicyContext, role: Any = None
) -> Iterator[str]:
    if not isinstance(subject, str):
        yield f"`{host}:sub` has a value that is not a string"
        return
    if host == names.GITHUB_OIDC_HOST:
        match = _GITHUB_SUBJECT.match(subject)
        if operator != "StringEquals":
            yield (
                f"`{host}:sub` is matched with {operator}; use StringEquals with an exact subject"
            )
        if not match:
            yield (
                f"GitHub subject {subject!r} is not one this project allows: use exactly "
                "repository_owner_id:ID:repository_id:ID: followed by environment:ENV (or "
                "ENV-readonly), pull_request or ref:refs/heads/main (infra/core/names.py "
                "github_subject), never a wildcard or a name-based repo:OWNER/REPO subject, whose "
                "form GitHub changes with the repository's history"
            )
            return
        environment = match.group("environment")
        if not environment or not ctx.environment:
            return
        own, readonly = _trusted_environments(ctx.environment)
        if environment not in (own, readonly):
            allowed = f"{own!r}" + (f", or {readonly!r} for read-only roles" if readonly else "")
            yield (
                f"GitHub subject {subject!r} trusts environment {environment!r} from the "
                f"{ctx.environment} stack: each stack's roles trust only its own environment "
                f"({allowed})"
            )
        elif environment == readonly and role == names.role_name(ctx.environment, "deploy"):
            yield (
                f"GitHub subject {subject!r} lets jobs in {readonly!r}, which has no required "
                f"reviewers, assume the deploy role: it trusts only environment {own!r}"
            )
        return
    if host == names.MODAL_OIDC_HOST:
        match = _MODAL_SUBJECT.match(subject)
        container = match.group("container") if match else ""
        container_ok = container == "*" or not _WILDCARDS.search(container)
        if not match or not container_ok or operator not in ("StringEquals", "StringLike"):
            yield (
                f"Modal subject {subject!r} ({operator}) must pin workspace, environment, app and "
                "function, with `container_id:*` as the only wildcard (StringLike): build it with "
                "infra.core.names.modal_subject_pattern"
            )
            return
        if ctx.environment and match.group("environment") != ctx.environment:
            yield (
                f"Modal subject {subject!r} trusts Modal environment "
                f"{match.group('environment')!r} from the {ctx.environment} stack"
            )
        return
    if operator != "StringEquals" or _WILDCARDS.search(subject):
        yield (
            f"`{host}:sub` must be pinned with StringEquals to one exact subject, not "
            f"{operator} {subject!r}"
        )


def check_oidc_trust(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """Every web-identity trust pins `aud` (StringEquals) and `sub`, with no stray wildcard.

    A role that trusts GitHub's issuer without a pinned `sub` can be assumed from any repository on
    GitHub; roles like that have been found in the wild.
    """
    if resource.type != types.AWS_ROLE:
        return
    role = resource.props.get("name") or resource.name
    document, problem = parse_document(
        f"trust policy of role '{role}'", resource.props.get("assumeRolePolicy")
    )
    if problem:
        yield problem
    if document is None:
        return
    for index, statement in enumerate(document.statements):
        if not is_allow(statement):
            continue
        label = statement_label(document, index, statement)
        principal = statement.get("Principal")
        if principal_is_anyone(principal):
            yield f"{label} lets any AWS principal assume the role: name the exact principal"
            continue
        federated = principal.get("Federated") if isinstance(principal, Mapping) else None
        if not federated:
            continue
        actions = [a for a in as_list(statement.get("Action")) if isinstance(a, str)]
        if "NotAction" in statement or any(a == "*" or a.endswith(":*") for a in actions):
            yield f"{label} allows every STS action: allow only sts:AssumeRoleWithWebIdentity"
        condition = statement.get("Condition")
        for arn in as_list(federated):
            if not isinstance(arn, str):
                continue
            host = _oidc_host(arn)
            audiences = _condition_entries(condition, f"{host}:aud")
            pinned = [v for op, vs in audiences if op == "StringEquals" for v in vs]
            expected = _EXPECTED_AUDIENCE.get(host)
            if not pinned:
                yield (
                    f"{label} does not pin `{host}:aud` with StringEquals: add "
                    f"{{'StringEquals': {{'{host}:aud': '{expected or 'AUDIENCE'}'}}}}"
                )
            for operator, values in audiences:
                for value in values:
                    wrong = operator != "StringEquals" or not isinstance(value, str)
                    wrong = wrong or bool(_WILDCARDS.search(str(value)))
                    wrong = wrong or (expected is not None and value != expected)
                    if wrong:
                        yield (
                            f"{label} matches `{host}:aud` with {operator} {value!r}; pin it "
                            f"with StringEquals to {expected or 'one exact audience'!r}"
                        )
            subjects = _condition_entries(condition, f"{host}:sub")
            if not subjects:
                yield (
                    f"{label} has no `{host}:sub` condition, so any identity that issuer signs "
                    "can assume the role: pin the subject (infra/stages/aws/iam.py builds pinned trusts)"
                )
            for operator, values in subjects:
                if operator not in ("StringEquals", "StringLike"):
                    yield (
                        f"{label} matches `{host}:sub` with {operator}; use StringEquals "
                        "(StringLike only for Modal's container id)"
                    )
                    continue
                for value in values:
                    for message in _check_subject(host, operator, value, ctx, role):
                        yield f"{label}: {message}"


def github_subject_ids(resource: Resource) -> set[tuple[str, str]]:
    """The (owner id, repository id) pairs a role's trust names in GitHub subjects."""
    document, _ = parse_document("", resource.props.get("assumeRolePolicy"))
    found: set[tuple[str, str]] = set()
    if document is None:
        return found
    key = f"{names.GITHUB_OIDC_HOST}:sub"
    for statement in document.statements:
        for _operator, values in _condition_entries(statement.get("Condition"), key):
            for value in values:
                match = _GITHUB_SUBJECT.match(value) if isinstance(value, str) else None
                if match:
                    found.add((match.group("owner"), match.group("repository")))
    return found


def check_one_repository(
    resources: Sequence[Resource], ctx: PolicyContext
) -> Iterator[tuple[Resource | None, str]]:
    """Stack level: every GitHub subject of the stack names the same repository. The program looks
    the ids up once; a role naming other ids trusts another repository's jobs."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for resource in resources:
        if resource.type == types.AWS_ROLE:
            for pair in github_subject_ids(resource):
                pairs.setdefault(pair, []).append(resource.name)
    if len(pairs) > 1:
        listed = "; ".join(
            f"owner {owner} / repository {repo}: {', '.join(sorted(roles))}"
            for (owner, repo), roles in sorted(pairs.items())
        )
        yield None, f"the stack's roles trust jobs of more than one repository ({listed})"
