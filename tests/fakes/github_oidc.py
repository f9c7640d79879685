"""How GitHub's OIDC issuer builds a job token's `sub`, as docs.github.com describes it
(Security hardening with OpenID Connect / OIDC reference):

- default, no template: `repo:OWNER/REPO:CONTEXT`, where CONTEXT is `environment:NAME` for a job
  with an environment, else `pull_request` for a pull-request job, else `ref:REF`;
- repositories with immutable subject claims (created or renamed since July 15, 2026, or opted
  in): the repo segment carries the ids, `repo:OWNER@OWNER_ID/REPO@REPO_ID:CONTEXT`;
- a custom template (`include_claim_keys`): each claim as `key:value`, in the template's order,
  joined with `:`; `repo` renders as the repo segment above, `context` as CONTEXT.

A model of the issuer, so the subjects the AWS roles pin can be checked against what GitHub would
actually send, for repositories of either history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Repository:
    owner: str
    owner_id: int
    name: str
    repository_id: int
    immutable_subject: bool  # GitHub's newer default format

    def repo_segment(self) -> str:
        if self.immutable_subject:
            return f"{self.owner}@{self.owner_id}/{self.name}@{self.repository_id}"
        return f"{self.owner}/{self.name}"


def issued_subject(
    repository: Repository, context: str, include_claim_keys: Sequence[str] | None
) -> str:
    """The `sub` of a job token: `context` is `environment:NAME`, `pull_request` or `ref:REF`."""
    if include_claim_keys is None:
        return f"repo:{repository.repo_segment()}:{context}"
    claims = {
        "repo": repository.repo_segment(),
        "context": context,
        "repository_owner": repository.owner,
        "repository_owner_id": str(repository.owner_id),
        "repository": f"{repository.owner}/{repository.name}",
        "repository_id": str(repository.repository_id),
    }
    parts = []
    for key in include_claim_keys:
        # `context` is already `key:value` shaped (environment:prod); the others render key:value.
        parts.append(claims[key] if key == "context" else f"{key}:{claims[key]}")
    return ":".join(parts)
