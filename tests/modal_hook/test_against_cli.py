"""The hook next to the real `modal` CLI: drift made by hand, and the guide's manual commands.

Each CLI call is a subprocess that imports `modal` (about 3 s here), so independent calls run in
parallel and the number of calls is kept to what the checks need.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import modal

from tests.fakes.modal_fixtures import CI_SERVICE_USER
from tests.modal_hook.support import (
    SECRET_NAME,
    checked,
    dev_environment,
    planted,
    prod_environment,
    runtime_secret,
)


def _in_parallel(*chains):
    """Run chains of CLI calls side by side; each chain's calls run in order."""

    def run(chain):
        return [call() for call in chain]

    with ThreadPoolExecutor(max_workers=len(chains)) as pool:
        return [f.result() for f in [pool.submit(run, chain) for chain in chains]]


def test_read_reports_drift_made_with_the_modal_cli(
    modal_env, environment_provider, secret_provider
):
    env_inputs = checked(environment_provider, prod_environment())
    env = environment_provider.create(env_inputs)
    secret_inputs = checked(secret_provider, runtime_secret("prod", {"TOKEN": planted("token")}))
    secret = secret_provider.create(secret_inputs)

    # A key added with the SDK: refresh sees the new key set (values are never readable).
    with modal.Client.from_credentials(modal_env.token_id, modal_env.token_secret) as client:
        modal.Secret.from_name(SECRET_NAME, environment_name="prod", client=client).update(
            {"ADDED_BY_HAND": "x"}
        )
    drifted = secret_provider.read(secret.id, secret.outs)
    assert drifted.outs["keys"] == ["ADDED_BY_HAND", "TOKEN"]
    assert secret_provider.diff(secret.id, drifted.outs, secret_inputs).changes is True

    # A role changed and the secret deleted by hand, with the CLI.
    _in_parallel(
        [
            lambda: modal_env.cli(
                "environment", "roles", "update", "prod", CI_SERVICE_USER,
                "--role", "viewer", "--service-user",
            )
        ],
        [lambda: modal_env.cli("secret", "delete", SECRET_NAME, "-e", "prod", "--yes")],
    )  # fmt: skip
    refreshed = environment_provider.read(env.id, env.outs)
    assert refreshed.id == "prod"
    assert refreshed.outs["service_user_roles"] == {CI_SERVICE_USER: "viewer"}
    assert environment_provider.diff(env.id, refreshed.outs, env_inputs).changes is True
    assert secret_provider.read(secret.id, secret.outs).id == ""  # gone: refresh drops it

    # The next `pulumi up` puts the role back.
    environment_provider.update(env.id, refreshed.outs, env_inputs)
    assert modal_env.state.snapshot()["environments"]["prod"]["roles"] == {
        f"service_user:{CI_SERVICE_USER}": "contributor"
    }

    # The environment deleted by hand.
    modal_env.cli("environment", "delete", "prod", "--yes")
    assert environment_provider.read(env.id, env.outs).id == ""
    assert modal_env.unimplemented_calls() == []


def test_the_guide_commands_and_the_hook_reach_the_same_state(
    fake_modal_factory, monkeypatch, tmp_path, environment_provider, secret_provider
):
    prod_values = {
        "AWS_REGION": "us-east-1",
        "RUNTIME_ROLE_ARN": "arn:aws:iam::123456789012:role/rentagpu/prod/rentagpu-prod-runtime",
        "WEBHOOK_TOKEN": planted("webhook") + " with spaces # and a hash",
    }
    dev_values = {"AWS_REGION": "eu-west-1", "API_TOKEN": planted("api")}
    dotenv = tmp_path / "prod.env"
    dotenv.write_text("".join(f'{key}="{value}"\n' for key, value in prod_values.items()))

    # By hand, as the guide says.
    by_hand = fake_modal_factory()
    _in_parallel(
        [
            lambda: by_hand.cli("environment", "create", "dev"),
            lambda: by_hand.cli(
                "secret", "create", SECRET_NAME,
                *(f"{key}={value}" for key, value in dev_values.items()), "-e", "dev",
            ),
        ],
        [
            lambda: by_hand.cli("environment", "create", "prod", "--restricted"),
            lambda: by_hand.cli(
                "environment", "roles", "update", "prod", CI_SERVICE_USER,
                "--role", "contributor", "--service-user",
            ),
            lambda: by_hand.cli(
                "secret", "create", SECRET_NAME, "--from-dotenv", str(dotenv), "-e", "prod"
            ),
        ],
    )  # fmt: skip

    # With the hook, from the same input.
    hooked = fake_modal_factory()
    hooked.use(monkeypatch)
    environment_provider.create(
        checked(environment_provider, dev_environment(service_user_roles={}))
    )
    environment_provider.create(checked(environment_provider, prod_environment()))
    secret_provider.create(checked(secret_provider, runtime_secret("dev", dev_values)))
    secret_provider.create(checked(secret_provider, runtime_secret("prod", prod_values)))

    expected = hooked.state.snapshot()
    assert expected["secrets"][f"prod/{SECRET_NAME}"] == prod_values
    assert expected["environments"]["prod"]["restricted"] is True
    assert by_hand.state.snapshot() == expected
    assert by_hand.unimplemented_calls() == [] and hooked.unimplemented_calls() == []
