"""A dynamic provider that records what it is asked, for checking the in-process engine's
semantics against the real engine's (tests/fakes/test_engine.py). Module-level, so it pickles by
reference like the hook's providers; the log and the "remote" system live here too."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from infra.core.wire import contains_unknown

LOG: list[tuple[str, Any]] = []
REMOTE: dict[str, dict[str, Any]] = {}  # id -> what the remote system holds


def reset() -> None:
    LOG.clear()
    REMOTE.clear()


class RecordingProvider(ResourceProvider):
    def check(self, olds: dict, news: dict) -> CheckResult:
        LOG.append(("check", {"olds": dict(olds), "news": dict(news)}))
        return CheckResult(dict(news), [])

    def diff(self, id_: str, olds: dict, news: dict) -> DiffResult:
        LOG.append(("diff", {"id": id_, "olds": dict(olds), "news": dict(news)}))
        replaces = ["name"] if olds.get("name") != news.get("name") else []
        changed = contains_unknown(news.get("value")) or olds.get("value") != news.get("value")
        return DiffResult(
            changes=bool(replaces) or changed,
            replaces=replaces,
            stables=[],
            delete_before_replace=bool(news.get("delete_first")),
        )

    def create(self, props: dict) -> CreateResult:
        LOG.append(("create", dict(props)))
        id_ = f"{props['name']}-{len(LOG)}"
        outs = {**props, "computed": f"computed-{props['name']}"}
        REMOTE[id_] = dict(outs)
        return CreateResult(id_, outs)

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        LOG.append(("update", {"id": id_, "olds": dict(olds), "news": dict(news)}))
        outs = {**news, "computed": olds.get("computed")}
        REMOTE[id_] = dict(outs)
        return UpdateResult(outs)

    def delete(self, id_: str, props: dict) -> None:
        LOG.append(("delete", id_))
        REMOTE.pop(id_, None)

    def read(self, id_: str, props: dict) -> ReadResult:
        LOG.append(("read", id_))
        if id_ not in REMOTE:
            return ReadResult("", {})
        return ReadResult(id_, dict(REMOTE[id_]))


class Recorded(pulumi.dynamic.Resource, module="test", name="Recorded"):
    computed: pulumi.Output[str]
    token: pulumi.Output[str]

    def __init__(self, name: str, props: dict, opts: pulumi.ResourceOptions | None = None):
        super().__init__(RecordingProvider(), name, {**props, "computed": None}, opts)
