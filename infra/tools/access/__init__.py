"""`python -m infra access --stack STACK [--json] [--readme] [--project-dir DIR]`: the credential
graph.

Every credential the stack creates or reads and every one the workflows hand out (GitHub tokens
and secrets, AWS roles, Modal tokens, Pulumi backend tokens, the stack's config and state as a
thing to decrypt, the admin's own), with where it lives, who can obtain it (trigger, branch,
environment, approval), whether that needs a prod reviewer's approval, and what it reaches. It reads
the stacks as the offline plan renders them (`Pulumi.*.yaml` in the project directory, no
credentials) and `.github/workflows/*.yml` as they are: no second copy of either.

A violation of the invariant (no credential obtainable without prod's approval deploys, writes,
administers or decrypts anything of prod; dev's reach nothing of prod), a credential nothing says
the meaning of, or one shared by both stacks, is listed, and the exit code is 1. `--readme` prints
the README's table of what each credential can touch, for every stack. `--project-dir` reads
another checkout (a copy with a change to try).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infra.tools.command import add_command

SUMMARY = "list every credential, who can obtain it and what it reaches; violations exit 1"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "access", SUMMARY, __doc__)
    parser.add_argument("--stack", help="the stack whose credentials to list: dev or prod")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--readme", action="store_true", help="print the README's credential table (all stacks)"
    )
    parser.add_argument(
        "--project-dir", type=Path, default=None, help="the checkout to read (default: this one)"
    )
    parser.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from infra.tools.access.report import access_document, format_text, readme_table, stack_graph

    graph = stack_graph(args.project_dir)
    if args.readme:
        print(readme_table(graph))
        return 1 if graph.violations else 0
    if not args.stack:
        raise SystemExit("access: --stack STACK is required (or --readme)")
    document = access_document(graph, args.stack)
    print(json.dumps(document, indent=2) if args.json else format_text(document), end="\n")
    return 1 if document["violations"] else 0
