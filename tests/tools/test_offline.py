"""The offline renderer itself: what it leaves behind in the process."""

from __future__ import annotations

import pickle

from infra.tools.offline import render
from tests.stacks import stack_config


def test_rendering_again_and_again_leaves_pickle_as_it_was() -> None:
    """pulumi 3.272.0 wraps `pickle._Pickler._batch_setitems` once per dynamic resource declared
    and never unwraps it (pulumi/dynamic/dynamic.py, serialize_provider): without the restore, a
    process that renders stacks repeatedly (this suite, `python -m infra access`) nests wrappers
    until Python's recursion limit."""
    before = (pickle._Pickler._batch_setitems, pickle._Pickler.save_dict)  # type: ignore[attr-defined]
    for _ in range(3):
        render(stack_config("dev"))
    after = (pickle._Pickler._batch_setitems, pickle._Pickler.save_dict)  # type: ignore[attr-defined]
    assert after == before
