"""`python -m infra plan --stack STACK [--json]`: render a stack with no credentials, no network.

The real program runs under Pulumi mocks (`infra.tools.offline`) and every resource it declares is
printed with its inputs, secret values masked, followed by the policy verdicts. Fork PRs, which get
no credentials, run this to see a change's effect.

Config comes from `Pulumi.STACK.yaml`. Its `secure:` values cannot be decrypted offline and are
shown as set-but-masked; required secrets that are not set at all are reported as unset rather than
failing, so a fresh clone renders. `--config-json FILE` takes the output of
`pulumi config --json --show-secrets` instead, to render with the real values (still masked).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core.config import RawValue
from infra.core.config_schema import KEYS
from infra.core.config_sources import config_from_json, config_from_stack_file
from infra.core.errors import ConfigError
from infra.policies.checklist import run_policies
from infra.policies.cross_stack import (
    check_stacks_share_no_credential,
    check_stacks_share_nothing,
)
from infra.policies.model import PolicyContext, Resource, Violation
from infra.tools.command import add_command

UNSET = "<unset>"
# Secrets every stack must set (none today: CI's tokens are minted by the program), from the schema.
REQUIRED_SECRETS = tuple(key.full for key in KEYS if key.secret and not key.optional)
PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LoadedConfig:
    raw: dict[str, RawValue]
    unset_secrets: tuple[str, ...]


def load_config(
    stack: str, config_json: str | None = None, project_dir: Path = PROJECT_DIR
) -> LoadedConfig:
    raw = (
        config_from_json(config_json, stack)
        if config_json is not None
        else config_from_stack_file(project_dir / f"Pulumi.{stack}.yaml")
    )
    unset = tuple(k for k in REQUIRED_SECRETS if k not in raw)
    for key in unset:
        raw[key] = RawValue(UNSET, secret=True)
    return LoadedConfig(raw=raw, unset_secrets=unset)


def resource_view(rendered: Any) -> Resource:
    """What the policies see of a resource the offline run recorded (its unmasked inputs and the
    paths that were marked secret)."""
    props = {k: v for k, v in dict(rendered.raw_inputs).items() if not k.startswith("__")}
    return Resource(
        type=rendered.type,
        name=rendered.name,
        props=props,
        secret_paths=frozenset(rendered.secret_paths),
    )


def evaluate(rendering: Any, context: PolicyContext | None = None) -> list[Violation]:
    """The verdicts for one rendered stack (`infra.tools.offline.Rendering`).

    Without a context, the stack name is taken as its environment (the config parser insists they
    are equal) and the rest keeps its defaults.
    """
    ctx = context or PolicyContext(environment=rendering.stack)
    return run_policies([resource_view(r) for r in rendering.resources], ctx)


def evaluate_stacks(renderings: Any) -> list[Violation]:
    """The cross-stack checks over renderings of several stacks (dev and prod): nothing declared
    twice, and no credential used by two."""
    stacks = {r.stack: [resource_view(x) for x in r.resources] for r in renderings}
    return check_stacks_share_nothing(stacks) + check_stacks_share_no_credential(stacks)


def _whole_numbers(value: Any) -> Any:
    # Numbers cross Pulumi's wire as floats; a reviewer id shown as 44538168.0 reads as wrong.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def _visible_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    # `__provider` is a dynamic resource's pickled provider: opaque, and not the user's input.
    return {k: _whole_numbers(v) for k, v in sorted(inputs.items()) if not k.startswith("__")}


def plan_document(
    stack: str, config_json: str | None = None, project_dir: Path = PROJECT_DIR
) -> dict[str, Any]:
    """Everything the plan prints, as one JSON object (the shape `--json` documents in the README)."""
    from infra.core.config import parse_config
    from infra.tools.offline import render

    loaded = load_config(stack, config_json, project_dir)
    cfg = parse_config(stack, loaded.raw)
    rendering = render(cfg)
    context = PolicyContext(
        environment=cfg.environment,
        access_key_max_age_days=cfg.aws.access_key_max_age_days,
    )
    resources = sorted(rendering.resources, key=lambda r: (r.type, r.name))
    by_name = {(r.type, r.name): r for r in rendering.resources}
    return {
        "stack": stack,
        "resources": [
            {
                "type": r.type,
                "name": r.name,
                "inputs": _visible_inputs(dict(r.inputs)),
                "provider": _provider_entry(r, by_name),
            }
            for r in resources
        ],
        "violations": [v.as_dict() for v in evaluate(rendering, context)],
        "unset_secrets": list(loaded.unset_secrets),
    }


def _provider_entry(resource: Any, by_name: dict) -> dict[str, Any] | None:
    """The explicit provider a resource is bound to, as the plan shows it (secrets masked); None
    for one left to the default provider of its package."""
    if resource.provider is None:
        return None
    provider = by_name.get(resource.provider)
    inputs = _visible_inputs(dict(provider.inputs)) if provider is not None else {}
    return {"type": resource.provider[0], "name": resource.provider[1], "inputs": inputs}


def _pretty(value: Any) -> Any:
    """Policy documents are JSON strings; show them as structure so a reviewer can read them."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _pretty(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pretty(v) for v in value]
    return value


def format_text(document: dict[str, Any]) -> str:
    lines = [
        f"stack {document['stack']}: offline plan (Pulumi mocks: no credentials, no network; "
        "secret values masked)"
    ]
    if document["unset_secrets"]:
        keys = ", ".join(document["unset_secrets"])
        lines.append(f"secrets not set: {keys} (pulumi config set --secret KEY --stack STACK)")
    lines.append(f"{len(document['resources'])} resources:")
    for resource in document["resources"]:
        lines.append(f"\n+ {resource['type']}  {resource['name']}")
        if resource.get("provider"):
            lines.append(f"    (provider: {resource['provider']['name']})")
        for key, value in resource["inputs"].items():
            rendered = json.dumps(_pretty(value), indent=2, sort_keys=True)
            rendered = rendered.replace("\n", "\n      ")
            lines.append(f"    {key}: {rendered}")
    violations = document["violations"]
    lines.append("")
    if not violations:
        lines.append("policy verdicts: all checks passed")
    else:
        lines.append(f"policy verdicts: {len(violations)} violation(s)")
        for v in violations:
            lines.append(f"  [{v['level']}] {v['policy']}: {v['resource']}: {v['message']}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    config_json = None
    if args.config_json == "-":
        config_json = sys.stdin.read()
    elif args.config_json:
        try:
            config_json = Path(args.config_json).read_text()
        except OSError as error:
            raise ConfigError(
                args.stack, [f"--config-json: cannot read {args.config_json}: {error.strerror}"]
            ) from None
    document = plan_document(args.stack, config_json)
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(format_text(document), end="")
    mandatory = [v for v in document["violations"] if v["level"] == "mandatory"]
    return 1 if mandatory else 0


SUMMARY = "render a stack offline and print its resources and policy verdicts"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "plan", SUMMARY, __doc__)
    # Any name: a stack file that does not exist, or a stack that is not dev or prod, gets the
    # config check's own message rather than argparse's.
    parser.add_argument("--stack", required=True, help="stack name: dev or prod")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--config-json",
        metavar="FILE",
        help="use `pulumi config --json --show-secrets` output (FILE or - for stdin)",
    )
    parser.set_defaults(func=run)
