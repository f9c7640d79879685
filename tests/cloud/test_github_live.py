"""The deployed prod environment on the real GitHub has the protection the program declares.

Read-only. Needs GITHUB_TOKEN (read access to the repository's environments) and a deployed prod
stack whose Pulumi.prod.yaml names the repository.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from infra.core.config import parse_config
from infra.tools.plan import load_config
from tests.cloud.conftest import require

pytestmark = pytest.mark.cloud


def github_get(path: str, token: str) -> dict:
    request = urllib.request.Request(
        f"https://api.github.com{path}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - fixed https host
        return json.load(response)


def test_prod_environment_matches_the_declared_protection() -> None:
    token = require("GITHUB_TOKEN")["GITHUB_TOKEN"]
    cfg = parse_config("prod", load_config("prod").raw)
    repo = f"/repos/{cfg.github.owner}/{cfg.github.repository}"
    env = github_get(f"{repo}/environments/prod", token)
    assert env["can_admins_bypass"] is False
    assert env["deployment_branch_policy"] == {
        "protected_branches": False,
        "custom_branch_policies": True,
    }
    rules = {rule["type"]: rule for rule in env["protection_rules"]}
    reviewers = rules["required_reviewers"]
    assert reviewers["prevent_self_review"] is True
    logins = sorted(
        r["reviewer"].get("login") for r in reviewers["reviewers"] if r["type"] == "User"
    )
    assert logins == sorted(cfg.github.reviewers)
    policies = github_get(f"{repo}/environments/prod/deployment-branch-policies", token)
    assert [p["name"] for p in policies["branch_policies"]] == ["main"]
