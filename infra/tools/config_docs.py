"""`python -m infra config-docs [--pulumi-yaml | --readme]`: the stack config schema as the other two
places that must say the same, `Pulumi.yaml`'s `config:` block and the README's config table.

The schema (`infra.core.config_schema`) is the source; tests fail when either copy disagrees with
what this prints, so a new key is added once and pasted twice.

How a key is declared for the Pulumi CLI (pulumi/pulumi pkg/workspace/config.go, mergeConfig and
validateStackConfigValues; sdk/go/common/workspace/project.go, Validate):
- a key with neither a stack value nor a `default` is required: the CLI refuses to run and names it;
- a `default` is merged into the stack's config as a plain value before validation, and a key
  declared `secret: true` must hold an encrypted value, so a key a stack may leave unset
  (`Key.optional`, a secret or one required in some stacks only) is declared untyped with an empty
  default, and the program itself checks its type and refuses a secret in
  plain text (`infra.core.config`);
- a key of another namespace (`aws:region`) may only carry a `value`, so it is not declared.
"""

from __future__ import annotations

import argparse
from typing import Any

from infra.core.config_schema import KEYS, Key
from infra.tools.command import add_command

SUMMARY = "print the config schema as Pulumi.yaml's config block or the README's table"


def declared(key: Key) -> bool:
    """Whether the key belongs in Pulumi.yaml (only this project's keys may be declared)."""
    return ":" not in key.name


def pulumi_declaration(key: Key) -> dict[str, Any]:
    """One key's declaration in Pulumi.yaml's `config:` block."""
    if key.optional:
        # Untyped: the empty default must pass the CLI's type check; the program checks the type.
        description = f"secret, {key.description}" if key.secret else key.description
        return {"description": description, "default": ""}
    declaration: dict[str, Any] = {"type": key.kind, "description": key.description}
    if key.kind == "array":
        declaration["items"] = {"type": "string"}
    if key.secret:
        declaration["secret"] = True
    elif key.default is not None:
        default = key.default
        if key.kind == "array":
            default = list(default)
        elif key.kind == "object":
            default = dict(default)
        declaration["default"] = default
    return declaration


def pulumi_yaml_config() -> dict[str, dict[str, Any]]:
    return {key.name: pulumi_declaration(key) for key in KEYS if declared(key)}


def readme_rows() -> list[str]:
    rows = ["| key | meaning |", "|---|---|"]
    for key in KEYS:
        meaning = key.description
        if key.secret:
            meaning = f"**secret**{',' if key.optional else ':'} {key.description}"
        rows.append(f"| `{key.full}` | {meaning} |")
    return rows


def pulumi_yaml_block() -> str:
    """The `config:` block as YAML text, in schema order."""
    import yaml

    body = yaml.safe_dump(pulumi_yaml_config(), sort_keys=False, width=100, allow_unicode=True)
    indented = "".join(f"  {line}\n" for line in body.splitlines())
    return "config:\n" + indented


def run(args: argparse.Namespace) -> int:
    if args.readme:
        print("\n".join(readme_rows()))
    else:
        print(pulumi_yaml_block(), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "config-docs", SUMMARY, __doc__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--pulumi-yaml", action="store_true", help="the config: block (default)")
    which.add_argument("--readme", action="store_true", help="the README's config table")
    parser.set_defaults(func=run)
