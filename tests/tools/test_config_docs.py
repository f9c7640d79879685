"""One config schema, three views: infra/core/config_schema.py, Pulumi.yaml's `config:` block and
the README's table say the same (regenerate the copies with `python -m infra config-docs`)."""

from __future__ import annotations

import yaml

from infra.core.config_schema import KEYS
from infra.tools.config_docs import pulumi_yaml_config, readme_rows
from infra.tools.plan import PROJECT_DIR

PROJECT = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())


def test_pulumi_yaml_declares_exactly_the_schema() -> None:
    assert PROJECT["config"] == pulumi_yaml_config()


def test_the_readme_table_is_the_schema() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    rows = readme_rows()
    start = readme.index(rows[0])
    assert readme[start:].splitlines()[: len(rows)] == rows


def _valid(kind: str, value: object) -> bool:
    """pulumi/pulumi sdk/go/common/workspace/project.go ValidateConfigValue, for YAML values."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def test_every_declaration_passes_the_clis_own_rules() -> None:
    """project.go Validate and config.go mergeConfig/validateStackConfigValue, as the CLI applies
    them before the program runs: a typed default of the right type; `items` for an array; no
    default on a `secret: true` key (a default is merged in plain text and would then be refused as
    not encrypted); only this project's keys declared."""
    for name, declaration in PROJECT["config"].items():
        assert ":" not in name or name.startswith("rentagpu:"), name
        assert set(declaration) <= {"type", "description", "secret", "default", "items"}, name
        assert declaration.get("description"), name
        if "type" in declaration:
            assert declaration["type"] in ("string", "integer", "boolean", "array", "object")
            if declaration["type"] == "array":
                assert declaration["items"] == {"type": "string"}, name
            if "default" in declaration:
                assert _valid(declaration["type"], declaration["default"]), name
        assert not (declaration.get("secret") and "default" in declaration), name


def test_the_cli_requires_only_what_a_committed_stack_must_still_set_as_a_secret() -> None:
    """A declared key without a default is required: the CLI names every one missing from a stack.
    The committed stack files hold every such key: no secret must be set by hand (CI's Modal
    tokens are minted; the fallback token is optional)."""
    for stack in ("dev", "prod"):
        document = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
        present = {key.removeprefix("rentagpu:") for key in document["config"]}
        missing = {
            name
            for name, declaration in PROJECT["config"].items()
            if "default" not in declaration and name not in present
        }
        assert missing == set(), (stack, missing)


def test_every_key_of_the_schema_is_in_both_views_or_says_why_not() -> None:
    declared = set(PROJECT["config"])
    for key in KEYS:
        assert key.name in declared or ":" in key.name, key.name
