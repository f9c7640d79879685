"""Numbered steps, so an operator sees exactly where a runbook command stopped."""

from __future__ import annotations

from typing import TextIO


class Steps:
    """Prints numbered steps, so a user sees exactly where a run stopped."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        print(f"[{self.number}/{self.total}] {title}", file=self.out, flush=True)

    def say(self, text: str) -> None:
        for line in text.splitlines():
            print(f"      {line}", file=self.out, flush=True)
