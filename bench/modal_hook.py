"""The Modal hook against the guide's `modal` CLI sequence, on the fake Modal server.

    python bench/modal_hook.py [--repeat N]

Creates both environments (dev; prod restricted with the CI service user as contributor) and the
runtime secret in each, three ways, each on a fresh fake server:
  hook, in-process     the providers called directly (modal already imported)
  hook, fresh process  the same in a new interpreter, as Pulumi's dynamic-provider process runs it
  guide CLI sequence   `modal environment create ...`, `modal secret create ...` as subprocesses
and then a no-op refresh (`read` of every resource) plus a no-op update (`check` + `diff`).
Reports the median wall time, the RPCs the server saw, and ratios; asserts nothing. Aim (issue #3):
the hook at least 3x faster than the CLI sequence, and zero mutating RPCs on a no-op.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI_USER = "rentagpu-ci"
SECRET = "rentagpu-runtime"
VALUES = {
    "dev": {"AWS_REGION": "eu-west-1", "RUNTIME_ROLE_ARN": "arn:aws:iam::123456789012:role/dev"},
    "prod": {"AWS_REGION": "us-east-1", "RUNTIME_ROLE_ARN": "arn:aws:iam::123456789012:role/prod"},
}
ENVIRONMENTS = {
    "dev": {"restricted": False, "service_user_roles": {}},
    "prod": {"restricted": True, "service_user_roles": {CI_USER: "contributor"}},
}


def _environment_inputs(name: str) -> dict:
    return {"environment_name": name, **ENVIRONMENTS[name], "allow_deletion": False}


def _secret_inputs(name: str) -> dict:
    values = VALUES[name]
    return {
        "environment_name": name,
        "secret_name": SECRET,
        "values": values,
        "required_keys": sorted(values),
    }


def hook_create_all() -> list[tuple[object, str, dict, dict]]:
    """What `pulumi up` asks of the providers on a first run; returns (provider, id, inputs, outs)."""
    from infra.modal_hook.environment import ModalEnvironmentProvider
    from infra.modal_hook.secret import ModalSecretProvider

    environments, secrets = ModalEnvironmentProvider(), ModalSecretProvider()
    created = []
    for name in ("dev", "prod"):
        inputs = environments.check({}, _environment_inputs(name)).inputs
        result = environments.create(inputs)
        created.append((environments, result.id, inputs, result.outs))
    for name in ("dev", "prod"):
        inputs = secrets.check({}, _secret_inputs(name)).inputs
        result = secrets.create(inputs)
        created.append((secrets, result.id, inputs, result.outs))
    return created


def _start_server():
    from tests.fakes.modal_server import FakeModalServer

    server = FakeModalServer().start()
    server.state.add_service_user(CI_USER)
    return server


def _environ(server, config_path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env.update(
        MODAL_SERVER_URL=server.url,
        MODAL_TOKEN_ID=server.token_id,
        MODAL_TOKEN_SECRET=server.token_secret,
        MODAL_CONFIG_PATH=config_path,
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def run_hook_in_process(config_path: str) -> tuple[float, object, list]:
    server = _start_server()
    saved = dict(os.environ)
    os.environ.update(_environ(server, config_path))
    try:
        started = time.perf_counter()
        created = hook_create_all()
        return time.perf_counter() - started, server, created
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_hook_in_fresh_process(config_path: str) -> tuple[float, object]:
    server = _start_server()
    command = [sys.executable, str(Path(__file__).resolve()), "--hook-child"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=_environ(server, config_path), check=True)
    return time.perf_counter() - started, server


def run_guide_cli(config_path: str, workdir: Path) -> tuple[float, object]:
    server = _start_server()
    modal = str(Path(sys.executable).with_name("modal"))
    dotenv = workdir / "prod.env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in VALUES["prod"].items()))
    dev_pairs = [f"{k}={v}" for k, v in VALUES["dev"].items()]
    commands = [
        ["environment", "create", "dev"],
        ["environment", "create", "prod", "--restricted"],
        ["environment", "roles", "update", "prod", CI_USER, "--role", "contributor",
         "--service-user"],
        ["secret", "create", SECRET, *dev_pairs, "-e", "dev"],
        ["secret", "create", SECRET, "--from-dotenv", str(dotenv), "-e", "prod"],
    ]  # fmt: skip
    env = _environ(server, config_path)
    started = time.perf_counter()
    for args in commands:
        subprocess.run([modal, *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started, server


def noop_run(server, config_path: str, created: list) -> tuple[int, int, list[str], bool]:
    """A refresh (read) and an update with unchanged inputs (check + diff) of every resource."""
    saved = dict(os.environ)
    os.environ.update(_environ(server, config_path))
    server.clear_calls()
    changes = False
    try:
        for provider, id_, inputs, outs in created:
            refreshed = provider.read(id_, outs)
            news = provider.check(inputs, dict(inputs)).inputs
            changes = changes or bool(provider.diff(id_, refreshed.outs, news).changes)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    calls = server.calls
    return len(calls), len(server.mutating_calls()), sorted({c.rpc for c in calls}), changes


def _summary(server) -> tuple[int, int, dict]:
    calls = server.calls
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.rpc] = counts.get(call.rpc, 0) + 1
    return len(calls), len(server.mutating_calls()), counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hook-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # run as a script: make `infra` and `tests` importable

    if args.hook_child:
        hook_create_all()
        return 0

    import modal  # noqa: F401 - the in-process runs measure the hook, not the first SDK import

    walls: dict[str, list[float]] = {}
    rpc_report: dict[str, tuple[int, int, dict]] = {}
    states: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config_path = str(Path(tmp) / "modal.toml")
        Path(config_path).write_text("")
        for _ in range(args.repeat):
            wall, server, created = run_hook_in_process(config_path)
            walls.setdefault("hook, in-process", []).append(wall)
            rpc_report["hook, in-process"] = _summary(server)
            states["hook, in-process"] = server.state.snapshot()
            noop = noop_run(server, config_path, created)
            server.stop()

            wall, server = run_hook_in_fresh_process(config_path)
            walls.setdefault("hook, fresh process", []).append(wall)
            rpc_report["hook, fresh process"] = _summary(server)
            states["hook, fresh process"] = server.state.snapshot()
            server.stop()

            wall, server = run_guide_cli(config_path, Path(tmp))
            walls.setdefault("guide CLI sequence", []).append(wall)
            rpc_report["guide CLI sequence"] = _summary(server)
            states["guide CLI sequence"] = server.state.snapshot()
            server.stop()

    medians = {name: statistics.median(samples) for name, samples in walls.items()}
    cli = medians["guide CLI sequence"]
    print(f"create dev + prod environments and their secrets (median of {args.repeat} runs)")
    print(f"{'':22} {'wall s':>8} {'RPCs':>5} {'mutating':>9} {'CLI / this':>11}")
    for name, median in medians.items():
        total, mutating, _ = rpc_report[name]
        print(f"{name:22} {median:8.3f} {total:5d} {mutating:9d} {cli / median:10.1f}x")
    for name, (_, _, counts) in rpc_report.items():
        print(f"  {name}: {json.dumps(counts, sort_keys=True)}")
    same = all(state == states["guide CLI sequence"] for state in states.values())
    print(f"same end state on the server for all three: {'yes' if same else 'NO'}")
    total, mutating, rpcs, changes = noop
    print(
        f"no-op refresh + update of the 4 resources: {total} RPCs ({', '.join(rpcs)}), "
        f"{mutating} mutating, diff reports changes: {changes}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
