"""The policy main-requires-approval (infra/policies/approvals.py), driven through the pack with
hand-built validation args (see tests/policies/support.py). The owner stack's rendered ruleset with
rentagpu:requiredApprovals 0 and 1 is in test_rendered_stacks.py."""

from __future__ import annotations

import copy

import pytest

from infra.core import resource_types as T
from tests.policies.support import UNKNOWN_STRING, check

POLICY = "main-requires-approval"
# The inputs the owner stack renders for its ruleset (`python -m infra plan --stack prod --json`).
RULESET = {
    "name": "rentagpu-protect-main",
    "repository": "rentagpu",
    "target": "branch",
    "enforcement": "active",
    "conditions": {"refName": {"includes": ["refs/heads/main"], "excludes": []}},
    "rules": {
        "deletion": True,
        "nonFastForward": True,
        "pullRequest": {"requiredApprovingReviewCount": 1, "requireLastPushApproval": True},
    },
}


def ruleset(count: object = 1, includes: object = ("refs/heads/main",)) -> dict:
    props = copy.deepcopy(RULESET)
    props["rules"]["pullRequest"]["requiredApprovingReviewCount"] = count
    props["conditions"]["refName"]["includes"] = list(includes)  # type: ignore[call-overload]
    return props


@pytest.mark.parametrize("count", [1, 2, 6, 1.0])  # the engine's Struct numbers are doubles
def test_one_or_more_approvals_pass(count) -> None:
    assert check(POLICY, T.GITHUB_RULESET, ruleset(count)) == []


@pytest.mark.parametrize(("count", "shown"), [(0, "0"), (0.0, "0"), (-1, "-1"), (None, "0")])
def test_fewer_than_one_approval_is_refused_with_the_key_to_set(count, shown) -> None:
    (message,) = check(POLICY, T.GITHUB_RULESET, ruleset(count))
    assert (
        f"ruleset 'rentagpu-protect-main' (subject) on main requires {shown} approving" in message
    )
    assert "set rentagpu:requiredApprovals to at least 1" in message


@pytest.mark.parametrize("includes", [["~DEFAULT_BRANCH"], ["~ALL"], ["refs/heads/*"]])
def test_every_way_of_naming_main_is_checked(includes) -> None:
    assert check(POLICY, T.GITHUB_RULESET, ruleset(0, includes))


def test_a_ruleset_on_main_without_a_pull_request_rule_is_refused() -> None:
    props = ruleset()
    del props["rules"]["pullRequest"]
    (message,) = check(POLICY, T.GITHUB_RULESET, props)
    assert "has no pull_request rule" in message and "rentagpu:requiredApprovals" in message


def test_rulesets_on_other_refs_are_not_this_policy_s_business() -> None:
    assert check(POLICY, T.GITHUB_RULESET, ruleset(0, ["refs/heads/release/*"])) == []
    tags = {**ruleset(0), "target": "tag"}
    assert check(POLICY, T.GITHUB_RULESET, tags) == []


def test_an_unknown_count_waits_for_up() -> None:
    assert check(POLICY, T.GITHUB_RULESET, ruleset(UNKNOWN_STRING)) == []
