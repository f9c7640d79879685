"""`python -m infra audit --stack STACK [--since DAYS] [--json]`: who used which credential for
what, across Modal, GitHub and AWS, and does any of it look wrong?

Drift detection answers "is the config still as declared?"; the audit answers the guide's
"review workflow runs and token usage regularly" and incident response's "review audit logs":

  Modal   changes in the stack's environment (secrets, apps, roles) by anyone other than its CI
          service user, from Modal's audit log; service users against modalServiceUserRoles (exist,
          role, scoped, expiry, age, last use); members' tokens nobody uses.
  GitHub  deployments to the stack's environment and who approved them; a deployment from a ref
          the environment does not admit; prod deployments without an approval; secrets CI reads
          that are older than the rotation period (tokenRotationDays).
  AWS     when each of the stack's roles was last used; in access-key mode, the runtime key's
          age (accessKeyMaxAgeDays), last use, and any second key.

Each finding has a severity (high, medium, low) and the command that fixes or investigates it.
Config comes from Pulumi.STACK.yaml (no Pulumi backend or secret is needed). Credentials, all
read-only: MODAL_TOKEN_ID/MODAL_TOKEN_SECRET (reading the audit log and service users needs a
token Modal allows to; the fake server assumes a workspace manager's), GITHUB_TOKEN (Actions,
Deployments, Environments and Secrets read; GITHUB_API_URL for another API host), and AWS's default
chain (the stack's drift role suffices; AWS_ENDPOINT_URL for another endpoint). Nothing is
written anywhere, and secrets are never shown: ids appear masked.

Exit codes, as `infra report`: 0 every system checked, no finding; 7 findings; 2 the audit could
not run, or some part of it could not be checked (the report says which, and why): an
incomplete audit is never reported clean.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from infra.core.errors import AuditError
from infra.tools.audit.findings import SYSTEMS, AuditReport, AuditScope, SourceResult
from infra.tools.command import add_command, add_stack_argument

EXIT_CLEAN = 0
EXIT_FINDINGS = 7
EXIT_INCOMPLETE = 2
DEFAULT_SINCE_DAYS = 7
DEFAULT_UNUSED_DAYS = 90

Source = Callable[[AuditScope, Mapping[str, str]], SourceResult]


def default_sources() -> tuple[tuple[str, Source], ...]:
    """Where findings come from, one entry per system. A new source (Modal budgets, say) is one
    more entry here: a function from the scope and the environment to a `SourceResult`."""
    from infra.tools.audit.aws import aws_source
    from infra.tools.audit.github import github_source
    from infra.tools.audit.modal import modal_source

    return (("modal", modal_source), ("github", github_source), ("aws", aws_source))


def run_audit(
    scope: AuditScope,
    environ: Mapping[str, str],
    sources: Sequence[tuple[str, Source]] | None = None,
) -> AuditReport:
    chosen = default_sources() if sources is None else sources
    results = [source(scope, environ) for system, source in chosen if system not in scope.skipped]
    return AuditReport.from_results(scope, results)


def exit_code(report: AuditReport) -> int:
    if not report.complete:
        return EXIT_INCOMPLETE
    return EXIT_FINDINGS if report.findings else EXIT_CLEAN


def scope_from_args(args: argparse.Namespace, now: datetime.datetime | None = None) -> AuditScope:
    from infra.core.config import parse_config
    from infra.tools.plan import load_config

    config = parse_config(args.stack, load_config(args.stack).raw)
    return AuditScope(
        config,
        now or datetime.datetime.now(datetime.UTC),
        args.since,
        args.unused_days,
        tuple(sorted(set(args.skip or ()))),
    )


def _merged(args: argparse.Namespace) -> tuple[list[SourceResult], set[str]]:
    from infra.tools.audit.render import part_from_json

    results, checked = [], set()
    for path in args.merge or ():
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except OSError as error:
            raise AuditError(f"cannot read {path}: {error.strerror}") from None
        except ValueError:
            raise AuditError(f"{path} is not JSON") from None
        result, systems = part_from_json(document, args.stack)
        results.append(result)
        checked |= systems
    return results, checked


def run(args: argparse.Namespace) -> int:
    from infra.tools.audit.render import render_json, render_markdown

    merged, merged_checked = _merged(args)
    scope = scope_from_args(args)
    report = run_audit(scope, os.environ)
    if args.merge:
        # What another run checked is checked, not skipped.
        scope = replace(scope, skipped=tuple(s for s in scope.skipped if s not in merged_checked))
        parts = [
            SourceResult(list(report.findings), list(report.activity), list(report.not_checked)),
            *merged,
        ]
        report = AuditReport.from_results(scope, parts)
    if args.write_json:
        with open(args.write_json, "w", encoding="utf-8") as handle:
            handle.write(render_json(report))
    sys.stdout.write(render_json(report) if args.json else render_markdown(report))
    return exit_code(report)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= value <= 400:
        raise argparse.ArgumentTypeError(f"expected 1-400 days, got {value}")
    return value


SUMMARY = "review credential use across Modal, GitHub and AWS: findings with severity and fix"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "audit", SUMMARY, __doc__)
    add_stack_argument(parser)
    parser.add_argument(
        "--since",
        type=_positive,
        default=DEFAULT_SINCE_DAYS,
        metavar="DAYS",
        help=f"read events and deployments of the last DAYS days (default {DEFAULT_SINCE_DAYS})",
    )
    parser.add_argument(
        "--unused-days",
        type=_positive,
        default=DEFAULT_UNUSED_DAYS,
        metavar="DAYS",
        help=f"report credentials unused this long (default {DEFAULT_UNUSED_DAYS})",
    )
    parser.add_argument(
        "--skip",
        action="append",
        choices=SYSTEMS,
        help="leave a system out (repeatable); the report says it was skipped",
    )
    parser.add_argument(
        "--merge",
        action="append",
        metavar="FILE",
        help="add the results of a part run elsewhere (its --json output), e.g. the AWS part run "
        "where the stack's AWS role is available together with --skip aws here",
    )
    parser.add_argument("--write-json", metavar="FILE", help="also write the JSON report to FILE")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
