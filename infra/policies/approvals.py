"""Policy `main-requires-approval`: the owner stack's ruleset on main asks for at least one
approving review.

Every merge to main deploys dev at once and is what prod deploys from; a pull request nobody
approved is one writer alone changing both. Only the stack that owns repository settings
(rentagpu:ownsRepositorySettings) declares the ruleset, so only its config can weaken it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

from infra.core import names
from infra.core import resource_types as types
from infra.policies.model import PolicyContext, Resource, as_list, known

_MAIN_REF = names.MAIN_BRANCH_CONTEXT.removeprefix("ref:")  # refs/heads/main
# pulumi-github RepositoryRulesetConditionsRefName.includes: "Also accepts `~DEFAULT_BRANCH` to
# include the default branch or `~ALL` to include all branches" (pulumi_github/_inputs.py).
_COVERS_MAIN = ("~DEFAULT_BRANCH", "~ALL")
_FIX = "set rentagpu:requiredApprovals to at least 1 in the owner stack's config"


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in as_list(value) if isinstance(v, Mapping)]


def guards_main(props: Mapping[str, Any]) -> bool | None:
    """Whether a ruleset applies to main; None while that is unknown."""
    if props.get("target") not in (None, "branch"):
        return False
    includes: list[Any] = []
    for conditions in _mappings(props.get("conditions")):
        for ref_name in _mappings(conditions.get("refName")):
            value = ref_name.get("includes")
            if not known(value):
                return None
            includes += as_list(value)
    return any(
        isinstance(i, str) and (i in _COVERS_MAIN or fnmatch.fnmatchcase(_MAIN_REF, i))
        for i in includes
    )


def check_main_requires_approval(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """The pull_request rule of a ruleset on main has requiredApprovingReviewCount >= 1."""
    if resource.type != types.GITHUB_RULESET or not guards_main(resource.props):
        return
    where = f"ruleset '{resource.props.get('name')}' ({resource.name}) on main"
    rules = resource.props.get("rules")
    if not known(rules):
        return
    pull_requests = [r.get("pullRequest") for r in _mappings(rules)]
    pull_request = next((p for p in pull_requests if p is not None), None)
    if pull_request is None:
        yield f"{where} has no pull_request rule, so main takes changes nobody reviewed: {_FIX}"
        return
    for rule in _mappings(pull_request) if known(pull_request) else []:
        count = rule.get("requiredApprovingReviewCount")
        if not known(count):
            continue
        # The engine sends numbers as protobuf Struct values: doubles (1.0), not ints.
        if isinstance(count, bool) or not isinstance(count, int | float) or count < 1:
            shown = 0 if count is None else f"{count:g}" if isinstance(count, float) else count
            yield (
                f"{where} requires {shown} approving reviews, so "
                f"one writer alone merges what dev deploys at once and prod deploys next: {_FIX}"
            )
