"""`python -m infra report [FILE]`: the engine's JSON as a markdown change or drift report.

Reads what `pulumi preview --json` or `pulumi refresh --preview-only --json` prints (one
PreviewDigest document: `config`, `steps`, `diagnostics`, `changeSummary`) from FILE or stdin and
prints, for each changed resource, its type and name (from the URN) and each changed property with
its value before and after. In a refresh, before is what the last deployment recorded (expected)
and after is what the provider reads now (actual).

Secrets never reach the report: a value the engine marks secret (`"[secret]"`, or the secret
signature object), a property listed in the resource's `additionalSecretOutputs`, a property whose
name says secret/password/token/private key, and the `value` of a `...Secret` resource are all
shown as `[secret]` on both sides, so even a secret that is no longer marked in the refreshed
state stays hidden. Every other value is hidden too unless `--show-values` is given: a report lands
in issues and job summaries that more people read than the stack's state, and a value someone put
where a secret belongs is not marked. The property names still say what changed.

Exit codes: 0 no changes; 7 changes or drift (Pulumi's own code for `--expect-no-changes`); 2 the
input is not an engine document (malformed JSON, a plan, an event stream).
"""

from __future__ import annotations

import argparse
import sys

from infra.core.errors import ReportError
from infra.tools.command import add_command
from infra.tools.report.changes import build_report
from infra.tools.report.document import load_document
from infra.tools.report.markdown import DEFAULT_MAX_CHARS, render_markdown

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 7


def run(args: argparse.Namespace) -> int:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise ReportError(f"cannot read {args.file}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ReportError(f"{args.file} is not UTF-8 text") from None
    report = build_report(load_document(text), args.kind, args.stack, not args.show_values)
    sys.stdout.write(render_markdown(report, args.max_chars))
    return EXIT_CHANGES if report.has_changes else EXIT_NO_CHANGES


SUMMARY = "turn `pulumi preview/refresh --json` output into a markdown report"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "report", SUMMARY, __doc__)
    parser.add_argument("file", nargs="?", default="-", help="engine JSON (default: stdin)")
    parser.add_argument(
        "--kind",
        choices=("auto", "preview", "refresh"),
        default="auto",
        help="what produced the JSON (auto: refresh if any step is a refresh step)",
    )
    parser.add_argument("--stack", help="stack name for the title (default: from the URNs)")
    parser.add_argument(
        "--show-values",
        action="store_true",
        help="show the values before and after (secrets stay masked); by default only the "
        "changed properties are named",
    )
    parser.add_argument(
        "--max-chars",
        type=int,
        default=DEFAULT_MAX_CHARS,
        help=f"cut the report to this size (default {DEFAULT_MAX_CHARS}, fits a GitHub issue)",
    )
    parser.set_defaults(func=run)
