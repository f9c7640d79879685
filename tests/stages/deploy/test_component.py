"""Stage 4 through the whole program: an in-process `pulumi up` (tests/fakes/engine.py) whose
deploy runs the real `modal deploy` against the fake server, after the stages it depends on."""

from __future__ import annotations

import pytest

from infra.modal_hook import app_source
from tests.fakes.engine import InProcessEngine
from tests.fakes.modal_fixtures import CI_SERVICE_USER
from tests.modal_hook.deploy_support import APP, copy_source, live, revision
from tests.stacks import stack_config

ROLES = {"modalServiceUserRoles": {CI_SERVICE_USER: "contributor"}}


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """The program deploys a snapshot of modal_app/, not files other work may be editing."""
    root = copy_source(tmp_path / "checkout")
    monkeypatch.setattr(app_source, "PROJECT_ROOT", root)
    return root


def test_a_failed_smoke_job_fails_the_up_and_leaves_the_stack_ready_to_retry(
    deploy_modal_env, checkout, monkeypatch
):
    monkeypatch.setenv("GITHUB_SHA", revision())
    deploy_modal_env.server.runtime.gpu_available = False
    engine = InProcessEngine()
    with pytest.raises(Exception, match="failed its smoke test") as caught:
        engine.up(stack_config("prod", **ROLES))
    assert "no CUDA GPU is visible" in str(caught.value)
    assert live(deploy_modal_env.state, "prod") is None  # stopped: there was nothing before
    # The stages before it are recorded; the deployment is not, so the next `up` retries it.
    assert set(engine.state) == {
        "prod-modal-environment",
        "prod-modal-budget",
        "prod-ci-deploy-token-1",
        "prod-ci-read-token-1",
        "prod-modal-runtime-secret",
    }

    deploy_modal_env.server.runtime.gpu_available = True
    result = engine.up(stack_config("prod", **ROLES))
    assert result.created == ["prod-app-deployment"]
    assert live(deploy_modal_env.state, "prod")[0] == 1
    assert APP in {a.name for a in deploy_modal_env.state.apps_in("prod")}


def test_up_deploys_last_and_redeploys_only_for_a_change_that_reaches_the_app(
    deploy_modal_env, checkout, monkeypatch
):
    monkeypatch.setenv("GITHUB_SHA", first := revision())
    engine = InProcessEngine()
    result = engine.up(stack_config("dev", **ROLES))

    assert result.created[-1] == "dev-app-deployment"  # after every resource it depends on
    assert live(deploy_modal_env.state) == (1, first)
    assert result.rendering.outputs["modal_app_version"] == 1
    assert result.rendering.outputs["modal_app_deployment_tag"] == first
    # The deployed function reads the secret the Modal stage wrote, and ran its smoke job.
    runtime = deploy_modal_env.server.runtime
    assert runtime.payloads() == [{"job": "healthcheck"}]

    # A new commit, same config and same modal_app/: nothing is sent to Modal at all.
    monkeypatch.setenv("GITHUB_SHA", revision())
    deploy_modal_env.clear_calls()
    again = engine.up(stack_config("dev", **ROLES))
    assert "dev-app-deployment" in again.unchanged
    assert again.created == again.updated == again.deleted == []
    assert deploy_modal_env.mutating_calls() == []

    # A runtime secret value changes: the secret is rewritten, then the app redeployed. Here
    # Modal sees nothing new to deploy (as for an unchanged app), so its containers roll over.
    runtime.skip_next_publish = True
    deploy_modal_env.clear_calls()
    changed = engine.up(stack_config("dev", outputPrefix="jobs/results/", **ROLES))
    assert changed.updated == ["dev-modal-runtime-secret", "dev-app-deployment"]
    assert "AppRollover" in deploy_modal_env.rpc_names()
    assert live(deploy_modal_env.state)[0] == 2
    assert runtime.payloads() == [{"job": "healthcheck"}] * 2
    assert deploy_modal_env.unimplemented_calls() == []
