"""`python -m infra rotate KIND --stack STACK ...`: rotation as commands that cannot skip a step.

    python -m infra rotate ci-tokens         --stack STACK [--resume]
    python -m infra rotate modal-token       --stack STACK (--create-service-user NAME | --new-token-from stdin|env) [--revoke-old]
    python -m infra rotate modal-token       --stack STACK --resume [--revoke-old]
    python -m infra rotate aws-key           --stack STACK [--resume]
    python -m infra rotate pulumi-token      --stack STACK --scope write|read|preview [--check-since TIME]
    python -m infra rotate github-read-token --stack STACK [--check-since TIME]

CI's Modal tokens (`ci-tokens`): `pulumi up` mints them, one service user per purpose (deploy,
read), scoped to the stack's environment and expiring. The command reads `ciTokenSerial` and asks
Modal (with a workspace manager's MODAL_TOKEN_*) which of CI's service users exist, bumps the
serial, runs the full `pulumi up` (an admin's: CI's Modal tokens are governance), which mints new
service users, seals their tokens into the GitHub secrets and deletes the old users only at the end
of a successful update, then checks in Modal that each new user holds exactly its one role in the
stack's environment and the old ones are gone, and says where GitHub holds the tokens. A failed
update leaves the old users, so CI keeps working; `--resume` reruns the update and the checks
without a second bump.

The fallback deploy token (`modal-token`, only for a stack whose config supplies
`rentagpu:modalTokenId`/`modalTokenSecret`):
  1. read the current token from the stack's encrypted config and ask Modal who it belongs to;
  2. obtain the new one: create a scoped service user through Modal's API (a service user has
     exactly one token, shown only at creation, so the secret never reaches a terminal), or read
     it from stdin / RENTAGPU_NEW_MODAL_TOKEN_ID+_SECRET. Never from argv, never echoed;
  3. check it (TokenInfoGet: accepted, same workspace, not the old token, a service user's and not
     a person's, no role in another environment);
  4. keep the old token in the encrypted config (`rentagpu-rotation:previous...`, which the program
     never reads), switch the config to the new token and grant it the old one's role;
  5. `pulumi up` adopts it and seals it into the GitHub secrets; the old token stays valid in
     Modal, so whichever token GitHub holds works throughout;
  6. check both tokens: the new one reaches the stack's Modal environment, the old one still works;
  7. with --revoke-old (now, or later with --resume --revoke-old): refuse while any stack config
     still holds the old token, revoke it, check Modal now rejects it, and drop the kept copy.

AWS key (access-key mode): bump `accessKeySerial` and `pulumi up`. Pulumi creates the new key,
writes it into the Modal secret (the deploy stage smoke-tests the app) and deletes the old key only
at the end of a successful update. The command then checks in AWS that only the new key exists,
that it works and that the old one is refused; `--resume` finishes a failed update.

Pulumi backend tokens and the GitHub read token cannot be created from here: their kinds print the
steps (what the new token may do, the exact `gh secret set` for where the workflows read it, which
jobs use it, how to revoke the old one), and `--check-since TIME` checks GitHub's record that the
secret was written after TIME.

The stack is driven through `StackDriver` so tests can run all of this without the Pulumi CLI;
`PulumiCliDriver` is the real one. Output names keys, resources and masked ids only.
"""

from __future__ import annotations

import argparse

from infra.tools.command import add_command, add_stack_argument
from infra.tools.runbook.credential_input import NEW_TOKEN_ID_VARIABLE
from infra.tools.runbook.driver import Console
from infra.tools.runbook.places import PULUMI_SCOPES

SUMMARY = "rotate a credential of a stack step by step: CI's Modal tokens, the AWS key, ..."
# Every kind `rotate` takes; `infra.tools.runbook.coverage` maps the credential graph onto them.
KINDS = ("ci-tokens", "modal-token", "aws-key", "pulumi-token", "github-read-token")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "rotate", SUMMARY, __doc__)
    kinds = parser.add_subparsers(dest="credential", required=True)
    ci = kinds.add_parser("ci-tokens", help="replace CI's minted Modal tokens (ciTokenSerial)")
    add_stack_argument(ci)
    ci.add_argument("--resume", action="store_true", help="finish a rotation whose up failed")
    _modal_token(kinds)
    key = kinds.add_parser("aws-key", help="rotate the runtime IAM user's access key")
    add_stack_argument(key)
    key.add_argument("--resume", action="store_true", help="finish a rotation whose up failed")
    pulumi = kinds.add_parser("pulumi-token", help="the steps to replace a Pulumi backend token")
    add_stack_argument(pulumi)
    pulumi.add_argument(
        "--scope",
        required=True,
        choices=PULUMI_SCOPES,
        help="write: deploys (environment STACK); read: the read-only environment (prod); "
        "preview: the repository secret pull-request previews read",
    )
    github = kinds.add_parser("github-read-token", help="the steps to replace CI's GitHub token")
    add_stack_argument(github)  # any stack: its config names the repository
    for person in (pulumi, github):
        person.add_argument(
            "--check-since",
            metavar="TIME",
            help="check that GitHub's secret was written at or after TIME (ISO 8601)",
        )
    for sub in (ci, key, pulumi, github):
        sub.set_defaults(func=command)


def _modal_token(kinds: argparse._SubParsersAction) -> None:
    token = kinds.add_parser(
        "modal-token", help="rotate the fallback deploy token (rentagpu:modalTokenId)"
    )
    add_stack_argument(token)
    source = token.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--create-service-user",
        metavar="NAME",
        help="create a new scoped Modal service user (needs a manager's MODAL_TOKEN_*)",
    )
    source.add_argument(
        "--new-token-from",
        choices=("stdin", "env"),
        help=f"read the new token from stdin or {NEW_TOKEN_ID_VARIABLE}/_SECRET",
    )
    source.add_argument("--resume", action="store_true", help="continue a rotation that stopped")
    token.add_argument(
        "--revoke-old",
        action="store_true",
        help="revoke the old token in Modal and check it is refused",
    )
    token.set_defaults(func=command)


def command(args: argparse.Namespace, console: Console | None = None) -> int:
    # Each rotation's module is imported when it runs: `python -m infra` builds every command's
    # parser first, and these bring in the Modal client and asyncio.
    from infra.tools.runbook.ci_tokens import rotate_ci_tokens
    from infra.tools.runbook.person_tokens import rotate_person_token
    from infra.tools.runbook.rotate_aws_key import rotate_aws_key
    from infra.tools.runbook.rotate_modal_token import NewTokenSource, rotate_modal_token

    console = console or Console()
    driver = console.driver(args.stack)
    if args.credential == "ci-tokens":
        rotate_ci_tokens(driver, resume=args.resume, out=console.out)
        return 0
    if args.credential == "aws-key":
        rotate_aws_key(driver, resume=args.resume, out=console.out, environ=console.environ)
        return 0
    if args.credential in ("pulumi-token", "github-read-token"):
        return rotate_person_token(
            driver,
            getattr(args, "scope", None),
            check_since=args.check_since,
            out=console.out,
            environ=console.environ,
        )
    source = None
    if not args.resume:
        source = NewTokenSource(args.create_service_user, args.new_token_from)
    rotate_modal_token(
        driver,
        source,
        revoke_old=args.revoke_old,
        peers=console.peers(args.stack),
        out=console.out,
        stdin=console.stdin,
        environ=console.environ,
    )
    return 0
