"""The real `StackDriver`: the `pulumi` command lines it builds, and that values travel on stdin
(never argv, where any process listing shows them), checked without the Pulumi CLI."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from infra.core.config import RawValue
from infra.core.errors import StackCommandError, StackUpError
from infra.tools.runbook.driver import CompletedCall, PulumiCall, PulumiCliDriver

SECRET = "as-" + "s3cr3t" * 4


class Recorder:
    def __init__(self, stdout: str = "", returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[PulumiCall] = []
        self.reply = CompletedCall(returncode, stdout, stderr)

    def __call__(self, call: PulumiCall) -> CompletedCall:
        self.calls.append(call)
        return self.reply


def test_a_secret_is_set_through_stdin_and_never_appears_in_argv_or_repr() -> None:
    runner = Recorder()
    PulumiCliDriver("prod", runner=runner).set_config(
        "rentagpu:modalTokenSecret", SECRET, secret=True
    )
    (call,) = runner.calls
    assert call.argv == (
        "pulumi", "config", "set", "--stack", "prod", "--secret", "rentagpu:modalTokenSecret",
    )  # fmt: skip
    assert call.stdin == SECRET
    assert SECRET not in " ".join(call.argv) and SECRET not in repr(call)


def test_plain_values_and_paths() -> None:
    runner = Recorder()
    driver = PulumiCliDriver("dev", runner=runner)
    driver.set_config("rentagpu:accessKeySerial", "3", secret=False)
    driver.set_config("rentagpu:modalServiceUserRoles.ci-2", "contributor", secret=False, path=True)
    driver.remove_config("rentagpu:modalServiceUserRoles.ci-1", path=True)
    driver.remove_config("rentagpu-rotation:previousModalTokenId")
    assert [c.argv for c in runner.calls] == [
        ("pulumi", "config", "set", "--stack", "dev", "--plaintext", "rentagpu:accessKeySerial"),
        (
            "pulumi", "config", "set", "--stack", "dev", "--plaintext", "--path",
            "rentagpu:modalServiceUserRoles.ci-2",
        ),
        ("pulumi", "config", "rm", "--stack", "dev", "--path", "rentagpu:modalServiceUserRoles.ci-1"),
        ("pulumi", "config", "rm", "--stack", "dev", "rentagpu-rotation:previousModalTokenId"),
    ]  # fmt: skip
    assert [c.stdin for c in runner.calls] == ["3", "contributor", None, None]


def test_up_streams_to_the_terminal_and_a_failure_raises_stack_up_error() -> None:
    runner = Recorder(returncode=255)  # nothing captured: pulumi up wrote to the terminal
    with pytest.raises(StackUpError) as caught:
        PulumiCliDriver("prod", runner=runner).up()
    (call,) = runner.calls
    assert call.argv == ("pulumi", "up", "--yes", "--stack", "prod")
    assert call.capture is False and call.stdin is None
    assert "`pulumi up --yes --stack prod` exited 255" in str(caught.value)


def test_a_failed_set_never_echoes_the_value_it_was_given() -> None:
    runner = Recorder(returncode=1, stderr=f"error: bad value {SECRET}\n")
    with pytest.raises(StackCommandError) as caught:
        PulumiCliDriver("dev", runner=runner).set_config("rentagpu:x", SECRET, secret=True)
    assert SECRET not in str(caught.value) and "[secret]" in str(caught.value)


def test_config_is_read_from_the_json_listing_with_secrets_flagged() -> None:
    listing = {
        "rentagpu:bucket": {"value": "b", "secret": False},
        "rentagpu:modalTokenId": {"value": "ak-x", "secret": True},
        "rentagpu:modalServiceUserRoles": {
            "value": '{"ci":"contributor"}',
            "objectValue": {"ci": "contributor"},
            "secret": False,
        },
        "aws:region": {"value": "eu-west-1", "secret": False},
    }
    runner = Recorder(stdout=json.dumps(listing))
    raw = PulumiCliDriver("dev", runner=runner).get_config()
    assert runner.calls[0].argv == (
        "pulumi", "config", "--stack", "dev", "--json", "--show-secrets",
    )  # fmt: skip
    assert raw["rentagpu:modalTokenId"] == RawValue("ak-x", secret=True)
    assert json.loads(raw["rentagpu:modalServiceUserRoles"].value) == {"ci": "contributor"}
    assert raw["aws:region"] == RawValue("eu-west-1")


def test_state_comes_from_the_export_with_secret_envelopes_opened() -> None:
    sig = "4dabf18193072939515e22adb298388d"
    export = {
        "version": 3,
        "deployment": {
            "resources": [
                {
                    "urn": "urn:pulumi:dev::rentagpu::rentagpu:stage:Aws$aws:iam/accessKey:"
                    "AccessKey::dev-runtime-key-1",
                    "type": "aws:iam/accessKey:AccessKey",
                    "id": "AKIAEXAMPLE0000001",
                    "outputs": {
                        "user": "rentagpu-dev-runtime",
                        "secret": {sig: "1b47061264138c4ac30d75fd1eb44270", "plaintext": '"s"'},
                    },
                }
            ]
        },
    }
    runner = Recorder(stdout=json.dumps(export))
    (resource,) = PulumiCliDriver("dev", runner=runner).state_resources()
    assert runner.calls[0].argv == (
        "pulumi", "stack", "export", "--stack", "dev", "--show-secrets",
    )  # fmt: skip
    assert (resource.type, resource.name, resource.id) == (
        "aws:iam/accessKey:AccessKey",
        "dev-runtime-key-1",
        "AKIAEXAMPLE0000001",
    )
    assert resource.outputs["secret"] == "s"


def test_the_value_reaches_pulumi_on_stdin_of_a_real_process(tmp_path: Path) -> None:
    """A stand-in `pulumi` executable records the argv and stdin it really got."""
    record = tmp_path / "record.json"
    fake = tmp_path / "pulumi"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'stdin': sys.stdin.read()}}, open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    driver = PulumiCliDriver("prod", pulumi=str(fake), cwd=tmp_path)
    driver.set_config("rentagpu:modalTokenSecret", SECRET, secret=True)
    seen = json.loads(record.read_text())
    assert seen == {
        "argv": ["config", "set", "--stack", "prod", "--secret", "rentagpu:modalTokenSecret"],
        "stdin": SECRET,
    }


def test_a_missing_pulumi_cli_says_how_to_get_it(tmp_path: Path) -> None:
    driver = PulumiCliDriver("dev", pulumi=str(tmp_path / "no-such-pulumi"), cwd=tmp_path)
    with pytest.raises(StackCommandError, match="install the Pulumi CLI"):
        driver.get_config()
