"""The in-process engine (tests/fakes/engine.py) keeps the semantics of the real one, each checked
here with its source, so the tests built on it cannot drift into a fantasy of how Pulumi behaves.

Sources: pulumi 3.272.0's dynamic provider host (site-packages pulumi/dynamic/__main__.py) and the
engine (pulumi/pulumi pkg/resource/plugin/provider_plugin.go, pkg/resource/deploy/step.go), read in
the pulumi/pulumi repository.
"""

from __future__ import annotations

import pulumi
import pulumi.output
import pytest

from tests.fakes import recording_provider
from tests.fakes.engine import InProcessEngine
from tests.fakes.recording_provider import LOG, REMOTE, Recorded

STACK = "dev"


@pytest.fixture(autouse=True)
def fresh_log():
    recording_provider.reset()
    yield
    recording_provider.reset()


def calls(kind: str) -> list:
    return [args for method, args in LOG if method == kind]


def program(value: str = "v1", name: str = "thing", delete_first: bool = False):
    def declare() -> dict:
        first = Recorded("first", {"name": name, "value": value, "delete_first": delete_first})
        return {"computed": first.computed}

    return declare


def test_diff_and_update_see_the_recorded_outputs_as_olds() -> None:
    """provider_plugin.go Diff sends `Olds: mOldOutputs`; the host passes `request.olds` to both
    `diff` and `update`. Outputs, not inputs: `computed` exists only in the outputs."""
    engine = InProcessEngine()
    engine.up(STACK, program=program("v1"))
    engine.up(STACK, program=program("v2"))
    (diffed,) = calls("diff")
    (updated,) = calls("update")
    assert diffed["olds"]["computed"] == "computed-thing"
    assert updated["olds"]["computed"] == "computed-thing" and updated["news"]["value"] == "v2"


def test_check_sees_the_old_inputs() -> None:
    """The host's Check passes `request.olds` (the old inputs) to `check`."""
    engine = InProcessEngine()
    engine.up(STACK, program=program("v1"))
    engine.up(STACK, program=program("v2"))
    second_check = calls("check")[1]
    assert second_check["olds"]["value"] == "v1" and "computed" not in second_check["olds"]


def test_a_preview_never_creates_updates_or_deletes() -> None:
    """The host answers Configure without supportsPreview, so the engine never sends Create or
    Update during a preview and returns a new resource's inputs as its state (provider_plugin.go
    Create/Update with req.Preview)."""
    engine = InProcessEngine()
    first = engine.preview(STACK, program=program("v1"))
    assert first.created == ["first"] and calls("create") == []
    engine.up(STACK, program=program("v1"))
    LOG.clear()
    planned = engine.preview(STACK, program=program("v2"))
    assert planned.updated == ["first"]
    assert calls("update") == [] and calls("create") == [] and calls("delete") == []
    assert engine.state["first"].inputs["value"] == "v1"  # the state is untouched


def test_values_not_known_yet_reach_check_and_diff_as_unknown_objects() -> None:
    """In a preview, an input built from an output that does not exist yet is unknown; the host
    deserializes it with keep_unknowns=True, so the provider gets a `pulumi.output.Unknown`, not
    the wire string (pulumi/dynamic/__main__.py Check and Diff; pulumi/runtime/rpc.py)."""

    def declare() -> dict:
        first = Recorded("first", {"name": "a", "value": "v"})
        second = Recorded("second", {"name": "b", "value": first.computed})
        return {"second": second.computed}

    InProcessEngine().preview(STACK, program=declare)
    second_check = [c for c in calls("check") if c["news"]["name"] == "b"]
    assert isinstance(second_check[0]["news"]["value"], pulumi.output.Unknown)


def test_a_replacement_creates_the_new_resource_before_deleting_the_old() -> None:
    """step_generator.go: a replacement is create-then-delete unless the provider's diff (or the
    resource option) asks for delete-before-replace; the old one goes at the end of the run."""
    engine = InProcessEngine()
    engine.up(STACK, program=program(name="one"))
    LOG.clear()
    engine.up(STACK, program=program(name="two"))
    assert [m for m, _ in LOG if m in ("create", "delete")] == ["create", "delete"]
    LOG.clear()
    engine.up(STACK, program=program(name="three", delete_first=True))
    assert [m for m, _ in LOG if m in ("create", "delete")] == ["delete", "create"]


def test_outputs_named_like_a_secret_input_come_back_secret() -> None:
    """A dynamic provider cannot take secrets (acceptSecrets=False), so the engine strips the
    marks going in and marks again every output whose name matches a secret input
    (provider_plugin.go annotateSecrets)."""
    seen: dict[str, bool] = {}

    def declare() -> dict:
        thing = Recorded("first", {"name": "a", "value": pulumi.Output.secret("s3cr3t")})
        return {
            "value_is_secret": pulumi.Output.from_input(thing.value._is_secret),  # noqa: SLF001
            "computed_is_secret": pulumi.Output.from_input(thing.computed._is_secret),  # noqa: SLF001
        }

    rendering = InProcessEngine().up(STACK, program=declare).rendering
    seen.update(rendering.outputs)
    assert seen == {"value_is_secret": True, "computed_is_secret": False}
    (created,) = calls("create")
    assert created["value"] == "s3cr3t"  # the provider itself saw the plain value


def test_refresh_reads_then_diffs_the_read_state_against_the_recorded_inputs() -> None:
    """deploy/step.go RefreshStep: Read, then the diff an `up` would show, computed with the read
    outputs as olds and the recorded inputs as news."""
    engine = InProcessEngine()
    engine.up(STACK, program=program("v1"))
    clean = engine.refresh()
    assert clean.drifted == [] and clean.gone == []
    (id_,) = REMOTE
    REMOTE[id_]["value"] = "changed by hand"
    drifted = engine.refresh()
    assert drifted.drifted == ["first"]
    assert calls("diff")[-1]["olds"]["value"] == "changed by hand"
    assert calls("diff")[-1]["news"]["value"] == "v1"
    REMOTE.clear()
    assert engine.refresh().gone == ["first"]
