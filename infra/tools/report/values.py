"""Property paths and values in engine JSON: finding them, masking secrets, diffing, showing.

A value is treated as secret when the engine marks it (`[secret]` or the secret envelope) or its
property's name says so (secret, password, token, private key...), unless the name says it holds an
identifier of a secret (`secretName`, `tokenId`).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

from infra.core.secrets import SECRET_MASK
from infra.core.wire import UNKNOWN, is_secret_envelope

_SECRET_NAME = re.compile(
    r"secret|password|passwd|passphrase|token|private_?key|credential|plaintext|ciphertext"
    r"|encrypted|api_?key|access_?key",
    re.IGNORECASE,
)
# Names that say "secret" but hold an identifier: secretName, tokenId, accessKeyId, secretArn.
_NAME_OF_A_SECRET = re.compile(r"(name|names|id|ids|arn|arns|count|version)$", re.IGNORECASE)

MAX_CELL = 160


class _Absent:
    """A property that one side does not have (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


_PATH_TOKEN = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[\]]+)')


def split_path(path: str) -> list[str | int]:
    """Split a detailedDiff key (`tags.owner`, `rules[0].cidr`, `tags["a.b"]`) into segments."""
    segments: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            return [path]  # not a path we understand: treat it as one top-level key
        index, quoted, plain = match.groups()
        if index is not None:
            segments.append(int(index))
        elif quoted is not None:
            segments.append(json.loads(f'"{quoted}"'))
        else:
            segments.append(plain)
        position = match.end()
    return segments


def join_path(segments: list[str | int]) -> str:
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-/]*", segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment)}]"
    return text


def lookup(value: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        if isinstance(value, dict) and isinstance(segment, str) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and isinstance(segment, int) and segment < len(value):
            value = value[segment]
        else:
            return ABSENT
    return value


def is_marked_secret(value: Any) -> bool:
    if value == SECRET_MASK:
        return True
    return is_secret_envelope(value)


def named_secret(segment: str | int) -> bool:
    return (
        isinstance(segment, str)
        and bool(_SECRET_NAME.search(segment))
        and not _NAME_OF_A_SECRET.search(segment)
    )


def can_hold_a_secret(value: Any) -> bool:
    # A flag or an empty value under a secret-sounding name (`encrypted: true`) is safe to show.
    return not (value is None or value is ABSENT or isinstance(value, bool))


def hide_secrets(value: Any) -> Any:
    """A copy with every marked or secret-named value replaced by SECRET_MASK."""
    if is_marked_secret(value):
        return SECRET_MASK
    if isinstance(value, dict):
        return {
            k: SECRET_MASK if named_secret(k) and can_hold_a_secret(v) else hide_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hide_secrets(v) for v in value]
    return value


def contains_secret(value: Any) -> bool:
    if is_marked_secret(value):
        return True
    if isinstance(value, dict):
        return any(
            (named_secret(k) and can_hold_a_secret(v)) or contains_secret(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def render_value(value: Any, hide_values: bool = False) -> str:
    """One table cell: compact JSON, masked, truncated, safe inside a markdown table."""
    if value is ABSENT:
        return "*(absent)*"
    if value == UNKNOWN:
        return "*(known after deploy)*"
    if hide_values and value != SECRET_MASK:
        return "*(hidden)*"
    text = json.dumps(hide_secrets(value), sort_keys=True, ensure_ascii=False)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    # <code> rather than backticks: a value may hold backticks; `|` would split the table cell.
    return "<code>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"


def _as_json_document(value: Any) -> Any:
    """Policy documents and similar are JSON held in strings; diff them as structure."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def diff_values(before: Any, after: Any, path: list[str | int]) -> Iterator[tuple[str, Any, Any]]:
    """Leaf-level differences between two values, as (path, before, after)."""
    if before == after:
        return
    if is_marked_secret(before) or is_marked_secret(after):
        yield join_path(path), before, after  # never look inside a secret
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if isinstance(key, str) and key.startswith("__"):
                continue  # engine internals (`__provider`, `__meta`), not the user's properties
            yield from diff_values(before.get(key, ABSENT), after.get(key, ABSENT), [*path, key])
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from diff_values(old, new, [*path, index])
        return
    old_doc, new_doc = _as_json_document(before), _as_json_document(after)
    if old_doc is not None and new_doc is not None:
        prefix = join_path(path) + " → "
        for inner, old, new in diff_values(old_doc, new_doc, []):
            yield prefix + inner, old, new
        return
    yield join_path(path), before, after
