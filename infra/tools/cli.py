"""Command-line entry: one subcommand per module, each exposing `register(subparsers)`.

A subcommand's `register` adds its parser and sets `func(args) -> int` as the default. Modules are
imported only when listed here, and each keeps its heavy imports inside `func` so `--help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from infra.core.errors import RentagpuError

COMMAND_MODULES = (
    "infra.tools.plan",
    "infra.tools.planes",
    "infra.tools.access",
    "infra.tools.report",
    "infra.tools.runbook.rotate",
    "infra.tools.runbook.incident",
    "infra.tools.config_docs",
    "infra.tools.audit",
    "infra.tools.doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except RentagpuError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
