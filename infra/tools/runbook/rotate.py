"""`python -m infra rotate ...`: credential rotation as commands that cannot skip a step.

    python -m infra rotate modal-token      --stack STACK (--create-service-user NAME | --new-token-from stdin|env) [--revoke-old]
    python -m infra rotate modal-read-token --stack STACK (same options)
    python -m infra rotate modal-token      --stack STACK --resume [--revoke-old]
    python -m infra rotate aws-key          --stack STACK [--resume]

Modal token (the CI token in the GitHub environment secrets, or the read-only one):
  1. read the current token from the stack's encrypted config and ask Modal who it belongs to;
  2. obtain the new one: create a service user through Modal's API (in modal 1.6.4 a service user
     has exactly one token, shown only at creation, so the secret never reaches a terminal), or read
     it from stdin / RENTAGPU_NEW_MODAL_TOKEN_ID+_SECRET. Never from argv, never echoed;
  3. check it (TokenInfoGet: accepted, same workspace, not the old token);
  4. keep the old token in the encrypted config (`rentagpu-rotation:previous...`, which the program
     never reads) so a later step can revoke it exactly, then switch the config to the new token and
     grant a new service user the old one's role;
  5. `pulumi up` replaces the GitHub secrets and sets the role; the old token stays valid in Modal,
     so whichever token GitHub holds works throughout;
  6. check both tokens: the new one reaches the stack's Modal environment, the old one still works;
  7. with --revoke-old (now, or later with --resume --revoke-old): refuse while any stack config
     still holds the old token, revoke it (delete its service user, or delete the member token),
     check Modal now rejects it, and drop the kept copy from the config. Without it, say exactly
     what to revoke and how.

AWS key (access-key mode): bump `accessKeySerial` and `pulumi up`. The serial names a new logical
`aws.iam.AccessKey`, so Pulumi creates the new key, writes it into the Modal secret (and the deploy
stage smoke-tests the app) and deletes the old key only at the end of a successful update; a failure
anywhere leaves the old key in place. The command then checks in AWS that only the new key exists,
that it works (ListObjectsV2 on the input prefix) and that the old one is refused. A failed `up` is
reported with the old key's state checked for real, and `--resume` finishes it without a new bump.

The stack is driven through `StackDriver` so tests can run all of this without the Pulumi CLI;
`PulumiCliDriver` is the real one. Output names keys, resources and masked ids only.
"""

from __future__ import annotations

import argparse

from infra.tools.command import add_command, add_stack_argument
from infra.tools.runbook.driver import Console
from infra.tools.runbook.modal_tokens import TOKEN_SLOTS
from infra.tools.runbook.rotate_aws_key import rotate_aws_key
from infra.tools.runbook.rotate_modal_token import (
    NEW_TOKEN_ID_VARIABLE,
    NewTokenSource,
    rotate_modal_token,
)

SUMMARY = "rotate a Modal token or the runtime AWS key of a stack, step by step"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "rotate", SUMMARY, __doc__)
    kinds = parser.add_subparsers(dest="credential", required=True)
    for credential in TOKEN_SLOTS:
        token = kinds.add_parser(credential, help=f"rotate the stack's {credential}")
        add_stack_argument(token)
        source = token.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--create-service-user",
            metavar="NAME",
            help="create a new Modal service user for the token (needs a manager's MODAL_TOKEN_*)",
        )
        source.add_argument(
            "--new-token-from",
            choices=("stdin", "env"),
            help=f"read the new token from stdin or {NEW_TOKEN_ID_VARIABLE}/_SECRET",
        )
        source.add_argument(
            "--resume", action="store_true", help="continue a rotation that stopped"
        )
        token.add_argument(
            "--revoke-old",
            action="store_true",
            help="revoke the old token in Modal and check it is refused",
        )
        token.set_defaults(func=command)
    key = kinds.add_parser("aws-key", help="rotate the runtime IAM user's access key")
    add_stack_argument(key)
    key.add_argument("--resume", action="store_true", help="finish a rotation whose up failed")
    key.set_defaults(func=command)


def command(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    driver = console.driver(args.stack)
    if args.credential == "aws-key":
        rotate_aws_key(driver, resume=args.resume, out=console.out, environ=console.environ)
        return 0
    source = None
    if not args.resume:
        source = NewTokenSource(args.create_service_user, args.new_token_from)
    rotate_modal_token(
        driver,
        TOKEN_SLOTS[args.credential],
        source,
        revoke_old=args.revoke_old,
        peers=console.peers(args.stack),
        out=console.out,
        stdin=console.stdin,
        environ=console.environ,
    )
    return 0
