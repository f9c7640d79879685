"""Policy `access-key-rotation` (advisory): access keys are younger than the rotation age."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from infra.core import resource_types as types
from infra.policies.model import (
    PolicyContext,
    Resource,
    as_text,
)


def _parse_time(value: Any) -> datetime | None:
    text = as_text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_access_key_age(
    resources: Sequence[Resource], ctx: PolicyContext
) -> Iterator[tuple[Resource | None, str]]:
    """Stack level, because `createDate` is an output: keys older than the rotation age."""
    now = ctx.current_time()
    for resource in resources:
        if resource.type != types.AWS_ACCESS_KEY:
            continue
        created = _parse_time(resource.props.get("createDate"))
        if created is None:
            continue  # not created yet: a new key is as young as it gets
        age = (now - created).days
        if age > ctx.access_key_max_age_days:
            yield (
                resource,
                f"access key {resource.name} of user '{resource.props.get('user')}' was "
                f"created {created:%Y-%m-%d}, {age} days ago, past rentagpu:accessKeyMaxAgeDays "
                f"({ctx.access_key_max_age_days}): bump rentagpu:accessKeySerial by one and run "
                "`pulumi up`; the new key is live before the old one is deleted",
            )
