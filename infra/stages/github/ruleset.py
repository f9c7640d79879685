"""The ruleset that protects `main`, built from config alone (the owner stack declares it).

Every merge to main deploys dev at once and is what prod deploys from, so main takes a reviewed
pull request that passed CI, approved by a code owner (`.github/CODEOWNERS`), with no force push,
no deletion and no bypass, not even by admins.
"""

from __future__ import annotations

import pulumi_github as github

MAIN_RULESET_NAME = "rentagpu-protect-main"
# The checks of .github/workflows/ci.yml (job names as GitHub reports them) that a pull request
# into main must pass; tests keep this list and the workflow in step.
REQUIRED_CHECKS = (
    "tests (.ci/run)",
    "offline plan (dev)",
    "offline plan (prod)",
    "credential graph (access)",
    "workflow audit (zizmor)",
    "secret scan (tree and history)",
    "lint (ruff)",
)


def main_ruleset_conditions() -> github.RepositoryRulesetConditionsArgs:
    return github.RepositoryRulesetConditionsArgs(
        ref_name=github.RepositoryRulesetConditionsRefNameArgs(
            includes=["refs/heads/main"], excludes=[]
        )
    )


def main_ruleset_rules(required_approvals: int) -> github.RepositoryRulesetRulesArgs:
    return github.RepositoryRulesetRulesArgs(
        deletion=True,
        non_fast_forward=True,
        pull_request=github.RepositoryRulesetRulesPullRequestArgs(
            required_approving_review_count=required_approvals,
            # .github/CODEOWNERS names who must approve changes to the program, the app, the
            # workflows and the stack files; their review is required on top of the count.
            require_code_owner_review=True,
            dismiss_stale_reviews_on_push=True,
            require_last_push_approval=required_approvals > 0,
            required_review_thread_resolution=True,
        ),
        # What merges to main deploys dev at once: it must have passed CI first.
        required_status_checks=github.RepositoryRulesetRulesRequiredStatusChecksArgs(
            required_checks=[
                github.RepositoryRulesetRulesRequiredStatusChecksRequiredCheckArgs(context=check)
                for check in REQUIRED_CHECKS
            ],
            strict_required_status_checks_policy=True,
        ),
    )
