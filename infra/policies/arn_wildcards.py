"""Policy `iam-arns-name-exact-resources`: no Allow names an ARN whose account or resource name is
a wildcard.

`arn:aws:iam::*:role/*` is every role of every account; `arn:aws:s3:::*/*` every object of every
bucket. Only an S3 object key after a literal bucket may hold one (`arn:aws:s3:::BUCKET/jobs/
input/*`: the runtime reads and writes its prefixes). A bare `"Resource": "*"` is not repeated here:
`iam-no-wildcards` reports it (with its read-only exceptions), so one statement is not reported
twice for the same `*`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.policies.documents import allow_statements, statement_label
from infra.policies.model import PolicyContext, Resource, as_list

_WILDCARDS = ("*", "?")


def _wild(text: str) -> bool:
    return any(w in text for w in _WILDCARDS)


def wildcard_parts(arn: str) -> list[str]:
    """What of `arn` is a wildcard: its account, or the part that names the resource.

    ARN layout `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (AWS General Reference, "Amazon
    Resource Names"). The name part is the whole RESOURCE for IAM (`role/PATH/NAME`) and other
    services, the bucket for S3 buckets and objects (`BUCKET/KEY`, with no region or account).
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return ["the whole value, which is not an ARN"] if _wild(arn) else []
    _, _, service, region, account, name = parts
    found = []
    if _wild(account):
        found.append(f"account '{account}'")
    if service == "s3" and not region and not account:
        bucket = name.split("/", 1)[0]
        if _wild(bucket):
            found.append(f"bucket name '{bucket}'")
    elif _wild(name):
        found.append(f"resource name '{name}'")
    return found


def check_arn_names_exact(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """Every ARN an Allow names has a literal account and a literal resource name."""
    for document, index, statement in allow_statements(resource):
        actions = [a for a in as_list(statement.get("Action")) if isinstance(a, str)]
        said = ", ".join(actions) or "its actions"
        for arn in as_list(statement.get("Resource")):
            if not isinstance(arn, str) or arn == "*":
                continue  # a bare '*' is iam-no-wildcards' finding
            wild = wildcard_parts(arn)
            if wild:
                yield _message(statement_label(document, index, statement), said, arn, wild)


def _message(label: str, said: str, arn: Any, wild: list[str]) -> str:
    return (
        f"{label} allows {said} on {arn}, whose {' and '.join(wild)} "
        f"{'is a wildcard' if len(wild) == 1 else 'are wildcards'}, so it "
        "reaches whatever matches in any account or under any name: name the exact ARN "
        "(infra/core/names.py, with the stack's account id); only an S3 object key after a "
        "literal bucket may hold a wildcard"
    )
