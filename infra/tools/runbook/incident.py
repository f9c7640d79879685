"""`python -m infra incident --stack STACK [--credential KIND [--verify]]`: where a credential
lives, how to revoke and rotate it, and afterwards proof that nothing still holds the old one.

Without `--credential` it lists every credential of the stack's credential graph (`python -m infra
access`: what the stacks create or read and what the workflows hand out), each with its incident
kind and its rotate command, or why it has none (an OIDC role has no long-lived secret; a job's
token ends with its job; an admin's credentials are their own).

KIND is one of:
- `modal-deploy-token`    CI's deploy token (GitHub environment STACK: MODAL_TOKEN_ID/_SECRET):
                          minted by `pulumi up`, or the fallback from stack config
- `modal-read-token`      CI's read token (prod: environment prod-readonly; dev: repository
                          secrets RENTAGPU_DEV_MODAL_READ_TOKEN_ID/_SECRET)
- `modal-service-user`    service users modalServiceUserRoles gives a role (tokens made elsewhere)
- `modal-admin-token`     the workspace manager's own token, for admin `pulumi up`s
- `aws-key`               the runtime IAM user's access key (access-key mode only)
- `aws-role`              the stack's OIDC roles (no long-lived secret: how to end sessions)
- `aws-admin-credentials` the admin's own AWS credentials
- `pulumi-token`          the stack's Pulumi backend tokens (PULUMI_ACCESS_TOKEN in environment
                          STACK and, for prod, prod-readonly; RENTAGPU_STACK_PULUMI_READ_TOKEN)
- `stack-secrets`         what decrypting the stack's config and state hands over
- `github-read-token`     CI's read-only GitHub token (repository secret RENTAGPU_GITHUB_READ_TOKEN)
- `github-admin-token`    the admin's GitHub token (never stored: the admin's shell)
- `job-token`             a workflow job's own GITHUB_TOKEN

Without `--verify` the command prints every place the credential lives, then the exact commands to
revoke it and to rotate it. With `--verify` it takes the OLD credential (its id, and its secret if
it has one) from RENTAGPU_OLD_CREDENTIAL_ID / RENTAGPU_OLD_CREDENTIAL_SECRET or stdin (never argv)
and checks each place it can reach: the config of every stack, the stack's Pulumi state (which also
records what Pulumi last wrote into GitHub and the Modal secret), and the issuing system itself
(Modal lists and rejects tokens, AWS lists keys and refuses a deleted one, GitHub and Pulumi Cloud
answer 401). It exits 0 when nothing holds the old credential, 1 with a list of what still holds
it or what could not be checked. Kinds without a secret to look for say why `--verify` does not
apply. Output shows masked ids only.
"""

from __future__ import annotations

import argparse

from infra.core.errors import IncidentError
from infra.tools.command import add_command, add_stack_argument
from infra.tools.runbook.credential_input import read_credential
from infra.tools.runbook.driver import Console, names_config
from infra.tools.runbook.incident_kinds import CREDENTIALS, KINDS, SINGLE_VALUE, render_listing
from infra.tools.runbook.incident_places import OLD_ID_VARIABLE, OLD_SECRET_VARIABLE, StackFacts
from infra.tools.runbook.incident_verify import render_verdict, verify

SUMMARY = "every credential of a stack; where one lives, how to revoke and rotate it; --verify"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "incident", SUMMARY, __doc__)
    add_stack_argument(parser)
    parser.add_argument(
        "--credential", choices=CREDENTIALS, help="the kind of credential (omit to list all)"
    )
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
    if args.credential is None:
        if args.verify:
            raise IncidentError("--verify needs --credential KIND: which credential to look for")
        from infra.tools.access.report import access_document, stack_graph
        from infra.tools.runbook.coverage import overview

        graph = stack_graph()
        concerned = {c["name"] for c in access_document(graph, args.stack)["credentials"]}
        credentials = [c for name, c in sorted(graph.credentials.items()) if name in concerned]
        print(overview(credentials, args.stack), file=console.out)
        return 0
    driver = console.driver(args.stack)
    notes: list[str] = []
    raw = names_config(driver, notes)
    facts = StackFacts.from_config(args.stack, raw)
    if not args.verify:
        print(render_listing(args.credential, facts, notes), file=console.out)
        return 0
    why_not = KINDS[args.credential](facts).no_verify
    if why_not:
        raise IncidentError(f"--verify does not apply to {args.credential}: {why_not}")
    single = args.credential in SINGLE_VALUE
    source = args.old_from or ("env" if console.environ.get(OLD_ID_VARIABLE) else "stdin")
    old_id, old_secret = read_credential(
        source,
        id_variable=OLD_ID_VARIABLE,
        secret_variable=OLD_SECRET_VARIABLE,
        stdin=console.stdin,
        environ=console.environ,
        prompt=f"old {args.credential}",
        ask_secret=not single,
    )
    if single and old_secret is not None:
        raise IncidentError(f"a {args.credential} is one value: give it as the id, with no secret")
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
