"""`python -m infra incident --stack STACK --credential KIND [--verify]`: where a credential lives,
how to revoke and rotate it, and afterwards proof that nothing still holds the old one.

KIND is one of:
- `modal-token`       the CI deploy token (GitHub environment secrets MODAL_TOKEN_ID/_SECRET)
- `modal-read-token`  the read-only token of PR previews and drift checks (repository secrets)
- `aws-key`           the runtime IAM user's access key (access-key mode only)
- `github-token`      the GitHub provider's token (PULUMI_GITHUB_TOKEN, RENTAGPU_GITHUB_READ_TOKEN)

Without `--verify` the command prints every place the credential lives, then the exact commands to
revoke it and to rotate it. With `--verify` it takes the OLD credential (its id, and its secret if
known) from RENTAGPU_OLD_CREDENTIAL_ID / RENTAGPU_OLD_CREDENTIAL_SECRET or stdin (never argv) and
checks each place it can reach: the config of every stack, the stack's Pulumi state (which also
records what Pulumi last wrote into GitHub and the Modal secret), and the issuing system itself
(Modal lists and rejects tokens, AWS lists keys and refuses a deleted one, GitHub answers 401).
It exits 0 when nothing holds the old credential, 1 with a list of what still holds it or what
could not be checked. Output shows masked ids only.
"""

from __future__ import annotations

import argparse

from infra.core.errors import IncidentError, RentagpuError
from infra.tools.command import add_command, add_stack_argument
from infra.tools.runbook.credential_input import read_credential
from infra.tools.runbook.driver import Console
from infra.tools.runbook.incident_places import (
    CREDENTIALS,
    OLD_ID_VARIABLE,
    OLD_SECRET_VARIABLE,
    StackFacts,
    render_listing,
)
from infra.tools.runbook.incident_verify import render_verdict, verify

SUMMARY = "where a credential lives, how to revoke and rotate it; --verify it is gone"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "incident", SUMMARY, __doc__)
    add_stack_argument(parser)
    parser.add_argument("--credential", required=True, choices=CREDENTIALS)
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check that nothing still holds the old credential (given on stdin or in env)",
    )
    parser.add_argument(
        "--old-from",
        choices=("env", "stdin"),
        default=None,
        help=f"where --verify reads the old credential: {OLD_ID_VARIABLE}/{OLD_SECRET_VARIABLE}"
        " (the default when set) or stdin",
    )
    parser.set_defaults(func=command)


def command(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    driver = console.driver(args.stack)
    if not args.verify:
        notes: list[str] = []
        try:
            raw = driver.get_config()
        except RentagpuError as error:
            notes.append(f"stack config unreadable ({error}); names below use placeholders")
            raw = {}
        facts = StackFacts.from_config(args.stack, raw)
        print(render_listing(args.credential, facts, notes), file=console.out)
        return 0
    source = args.old_from or ("env" if console.environ.get(OLD_ID_VARIABLE) else "stdin")
    old_id, old_secret = read_credential(
        source,
        id_variable=OLD_ID_VARIABLE,
        secret_variable=OLD_SECRET_VARIABLE,
        stdin=console.stdin,
        environ=console.environ,
        prompt=f"old {args.credential}",
        ask_secret=args.credential != "github-token",  # a GitHub token is a single value
    )
    if args.credential == "github-token" and old_secret is not None:
        raise IncidentError("a GitHub token is one value: give it as the id, with no secret")
    verdict = verify(
        args.credential,
        driver,
        old_id,
        old_secret,
        peers=console.peers(args.stack),
        environ=console.environ,
    )
    print(render_verdict(args.credential, args.stack, old_id, verdict), file=console.out)
    return 0 if verdict.ok else 1
