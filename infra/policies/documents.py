"""IAM policy documents as the checks read them: parsed, split into statements, labelled."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.core import resource_types as types
from infra.policies.model import (
    Resource,
    as_list,
    known,
)


@dataclass(frozen=True)
class Document:
    label: str  # where it sits, for messages: "inline policy 'policy'"
    statements: list[Mapping[str, Any]]


def parse_document(label: str, value: Any) -> tuple[Document | None, str | None]:
    """(document, problem). Unknown or absent documents give (None, None): nothing to check yet."""
    if value is None or not known(value):
        return None, None
    document: Any = value
    if isinstance(value, str):
        try:
            document = json.loads(value)
        except ValueError:
            return (
                None,
                f"{label} is not valid JSON, so it cannot be checked; render it with json.dumps",
            )
    if not isinstance(document, Mapping):
        return None, f"{label} is not a JSON object"
    statements = as_list(document.get("Statement"))
    if not all(isinstance(s, Mapping) for s in statements):
        return None, f"{label} has a Statement that is not an object"
    return Document(label, statements), None


def statement_label(document: Document, index: int, statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid")
    which = f"'{sid}'" if isinstance(sid, str) and sid else f"#{index}"
    return f"{document.label} statement {which}"


def is_allow(statement: Mapping[str, Any]) -> bool:
    # AWS rejects a statement without Effect; treat anything but an explicit Deny as an Allow so
    # a malformed document can never hide a grant.
    return statement.get("Effect") != "Deny"


def principal_is_anyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return "*" in as_list(principal.get("AWS"))
    return False


def permission_documents(resource: Resource) -> Iterator[tuple[Document | None, str | None]]:
    """Every permission document a resource carries (trust policies are checked separately)."""
    props = resource.props
    if resource.type in (types.AWS_ROLE_POLICY, types.AWS_USER_POLICY, types.AWS_GROUP_POLICY):
        yield parse_document(f"inline policy '{props.get('name')}'", props.get("policy"))
    elif resource.type == types.AWS_POLICY:
        yield parse_document(f"managed policy '{props.get('name')}'", props.get("policy"))
    elif resource.type == types.AWS_BUCKET_POLICY:
        yield parse_document(f"bucket policy of '{props.get('bucket')}'", props.get("policy"))
    elif resource.type == types.AWS_ROLE:
        for inline in as_list(props.get("inlinePolicies")):
            if isinstance(inline, Mapping):
                yield parse_document(
                    f"inline policy '{inline.get('name')}' of role '{props.get('name')}'",
                    inline.get("policy"),
                )


def allow_statements(resource: Resource) -> Iterator[tuple[Document, int, Mapping[str, Any]]]:
    """(document, index, statement) of every Allow in the resource's permission documents. A
    Deny only takes more away; an unparsable document is `iam-no-wildcards`' finding."""
    for document, _problem in permission_documents(resource):
        if document is None:
            continue
        for index, statement in enumerate(document.statements):
            if is_allow(statement):
                yield document, index, statement
