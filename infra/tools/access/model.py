"""The credential graph's vocabulary: who can obtain a credential, and what it reaches.

JSON contract (README "The credential graph"): `{"stack", "credentials": [{"name", "held_in",
"obtainable_by": [...], "needs_prod_approval", "reaches": [{"system", "what", "environment",
"access"}]}], "violations": [...]}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

System = Literal["github", "aws", "modal", "pulumi"]
Access = Literal["read", "write", "deploy", "admin", "decrypt"]
# What prod must never hand to anyone without a prod reviewer's approval.
GUARDED = ("write", "deploy", "admin", "decrypt")


@dataclass(frozen=True)
class Reach:
    system: System
    what: str
    environment: str  # dev or prod
    access: Access

    def as_dict(self) -> dict[str, str]:
        return {
            "system": self.system,
            "what": self.what,
            "environment": self.environment,
            "access": self.access,
        }


@dataclass(frozen=True)
class Obtainer:
    """One way to obtain a credential. `via` names another credential whose holder obtains this
    one (a Pulumi token decrypts a stack's state; a Modal deploy runs code as the runtime role):
    then whether it needs prod's approval is that credential's."""

    by: str  # who or what: a workflow job, "any branch of this repository", an admin
    trigger: str = ""  # what starts it: push to main, pull_request, workflow_dispatch, ...
    branch: str = ""  # which branches can: main, any
    environment: str | None = None  # the GitHub environment whose protection applies
    approval: str | None = None  # whose approval it waits for
    needs_prod_approval: bool = False
    via: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "by": self.by,
            "trigger": self.trigger,
            "branch": self.branch,
            "environment": self.environment,
            "approval": self.approval,
            "needs_prod_approval": self.needs_prod_approval,
        }
        if self.via is not None:
            found["via"] = self.via
        return found


@dataclass
class Credential:
    name: str
    held_in: str
    stack: str  # the stack it belongs to (what it is for); dev or prod
    obtainable_by: list[Obtainer] = field(default_factory=list)
    reaches: list[Reach] = field(default_factory=list)
    needs_prod_approval: bool = False  # computed by graph.resolve

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "held_in": self.held_in,
            "obtainable_by": [o.as_dict() for o in self.obtainable_by],
            "needs_prod_approval": self.needs_prod_approval,
            "reaches": [r.as_dict() for r in self.reaches],
        }


@dataclass(frozen=True)
class Violation:
    credential: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"credential": self.credential, "message": self.message}
