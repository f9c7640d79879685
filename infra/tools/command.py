"""What every operator command shares: how it is added to `python -m infra`, and its `--stack`."""

from __future__ import annotations

import argparse

from infra.core.config_schema import ENVIRONMENTS


def add_command(
    subparsers: argparse._SubParsersAction, name: str, summary: str, doc: str | None
) -> argparse.ArgumentParser:
    """A subcommand whose `--help` shows its module's docstring as written."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, choices=ENVIRONMENTS, help="dev or prod")
