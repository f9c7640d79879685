"""Typed reads of one job's payload fields, each refusing a bad value with a `PayloadError`.

Every job parses its whole payload through `Fields` before it touches anything, so a bad payload
is refused before a byte is read or written. A field the job does not take is refused too: a typo
such as `iter` for `iters` must not silently run with the default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from modal_app.errors import PayloadError


def shown(value: object) -> str:
    # The caller's own value, cut short: enough to spot the mistake, never a wall of text.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


class Fields:
    """The fields of one job's payload (the `job` field already consumed)."""

    def __init__(self, payload: Mapping[str, object], job: str, known: Iterable[str]) -> None:
        known = tuple(known)
        for name in payload:
            if name == "job":
                continue
            if name not in known:
                listed = ", ".join(known) if known else "none"
                raise PayloadError(
                    str(name), f"is not a field of job {job!r}; its fields are: {listed}"
                )
        self._payload = payload
        self._job = job

    def _get(self, name: str, required: bool) -> object:
        if name not in self._payload:
            if required:
                raise PayloadError(name, f"is required by job {self._job!r}")
            return None
        return self._payload[name]

    def string(self, name: str, *, pattern: re.Pattern[str], allowed: str, max_length: int) -> str:
        value = self._get(name, required=True)
        if not isinstance(value, str):
            raise PayloadError(name, f"must be a string ({allowed}), got {_kind(value)}")
        if len(value) > max_length:
            raise PayloadError(name, f"is {len(value)} characters long; at most {max_length}")
        if not pattern.fullmatch(value):
            raise PayloadError(name, f"{shown(value)} is not valid; expected {allowed}")
        return value

    def integer(self, name: str, *, low: int, high: int, default: int | None = None) -> int:
        value = self._get(name, required=default is None)
        if value is None:
            assert default is not None
            return default
        # bool is an int in Python, but `"n": true` is a mistake, not the number 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(name, f"must be a whole number {low}-{high}, got {_kind(value)}")
        if not low <= value <= high:
            raise PayloadError(name, f"{value} is out of range; expected {low}-{high}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self._get(name, required=default is None)
        if value is None:
            assert default is not None
            return default
        if not isinstance(value, str) or value not in choices:
            raise PayloadError(
                name, f"{shown(value)} is not valid; expected one of: {', '.join(choices)}"
            )
        return value

    def numbers(
        self,
        name: str,
        *,
        low: float,
        high: float,
        max_items: int,
        default: tuple[float, ...],
    ) -> tuple[float, ...]:
        value = self._get(name, required=False)
        if value is None:
            return default
        if not isinstance(value, list | tuple):
            raise PayloadError(name, f"must be a list of numbers {low}-{high}, got {_kind(value)}")
        if not 1 <= len(value) <= max_items:
            raise PayloadError(name, f"has {len(value)} items; expected 1-{max_items}")
        items: list[float] = []
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise PayloadError(f"{name}[{index}]", f"must be a number, got {_kind(item)}")
            if not (math.isfinite(item) and low <= item <= high):
                raise PayloadError(
                    f"{name}[{index}]", f"{item} is out of range; expected {low}-{high}"
                )
            items.append(float(item))
        return tuple(items)
