"""The security checklist as code: validators shared by the policy pack and the offline plan.

(Being filled in: see issue #6.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str
    level: Literal["mandatory", "advisory"] = "mandatory"

    def as_dict(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "resource": self.resource,
            "message": self.message,
            "level": self.level,
        }


def evaluate(rendering: Any) -> list[Violation]:
    return []
