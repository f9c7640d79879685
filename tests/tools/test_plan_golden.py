"""The offline plan of both committed stacks, compared with a reviewed copy (tests/tools/golden/).

A change that alters what `pulumi up` would declare (a resource, a logical name, a type token, an
input) shows up here as a failing diff, so behaviour only changes on purpose: review the diff, then
regenerate the copies with `RENTAGPU_UPDATE_GOLDEN=1 .venv/bin/python -m pytest
tests/tools/test_plan_golden.py` and commit them with the change that explains them.

Resources are compared as a set (order is not behaviour). `source_hash` is a content hash of
`modal_app/`, so it changes with every edit of the app; it is compared by shape only. So is a CI
token's `public_key` (the mocked GitHub's, a random-looking 32 bytes): kept out of the copies, where
the secret scanner would take it for a credential.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "golden"
_HASH = re.compile(r"^[0-9a-f]{64}$")


def _normalised(document: dict[str, Any]) -> dict[str, Any]:
    resources = []
    for resource in document["resources"]:
        inputs = dict(resource["inputs"])
        if "source_hash" in inputs:
            assert _HASH.fullmatch(inputs["source_hash"]), inputs["source_hash"]
            inputs["source_hash"] = "<sha256 of modal_app/>"
        if "public_key" in inputs:
            assert len(base64.b64decode(inputs["public_key"], validate=True)) == 32
            inputs["public_key"] = "<GitHub's public key, base64>"
        resources.append({**resource, "inputs": inputs})
    resources.sort(key=lambda r: (r["type"], r["name"]))
    return {**document, "resources": resources}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_plan_of_each_committed_stack_matches_its_reviewed_copy(stack: str) -> None:
    from infra.tools.plan import plan_document

    actual = _normalised(plan_document(stack))
    path = GOLDEN / f"plan-{stack}.json"
    if os.environ.get("RENTAGPU_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    expected_by_name = {(r["type"], r["name"]): r for r in expected["resources"]}
    actual_by_name = {(r["type"], r["name"]): r for r in actual["resources"]}
    assert sorted(actual_by_name) == sorted(expected_by_name), "resources added or removed"
    for key, resource in actual_by_name.items():
        assert resource == expected_by_name[key], f"{key} changed"
    assert actual == expected
