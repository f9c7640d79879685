"""`python -m infra planes --stack STACK [--targets]`: which of the stack's resources CI's deploys
apply (delivery) and which only an admin's `pulumi up` does (governance), from the stack rendered
offline (`infra.core.planes` says which is which).

    --targets   print only the delivery plane's `pulumi up --target` globs, one per line, which
                `deploy.yml` passes to pulumi/actions' multi-line `target` input.
"""

from __future__ import annotations

import argparse

from infra.core import planes
from infra.core.config_schema import PROJECT
from infra.tools.command import add_command, add_stack_argument

SUMMARY = "list the stack's delivery and governance resources, or the delivery targets"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "planes", SUMMARY, __doc__)
    add_stack_argument(parser)
    parser.add_argument(
        "--targets", action="store_true", help="print the delivery plane's target globs only"
    )
    parser.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from infra.core.config import parse_config
    from infra.tools.offline import render
    from infra.tools.plan import load_config

    cfg = parse_config(args.stack, load_config(args.stack).raw)
    environment = cfg.environment
    if args.targets:
        print("\n".join(planes.target_globs(PROJECT, args.stack, environment)))
        return 0
    by_plane: dict[str, list[str]] = {planes.DELIVERY: [], planes.GOVERNANCE: []}
    for resource in render(cfg).resources:
        if resource.type.startswith(("pulumi:providers:", "rentagpu:stage:")):
            continue
        which = planes.plane(environment, resource.type, resource.name)
        by_plane[which].append(f"  {resource.type}  {resource.name}")
    print(f"stack {args.stack}: delivery plane (CI's deploys apply these)")
    print("\n".join(sorted(by_plane[planes.DELIVERY])))
    print("governance plane (only an admin's `pulumi up` applies these)")
    print("\n".join(sorted(by_plane[planes.GOVERNANCE])))
    return 0
