"""The real `modal deploy`, run as a subprocess with an allow-listed environment.

A deploy imports and runs the app module's code, and the caller's environment may hold any
credential (CI tokens, a rotation's new or old secret, cloud keys). So the subprocess inherits only
how to run Python and reach the network, plus the Modal token and the deploy settings
`modal_app/app.py` reads; nothing else passes. Its output is redacted of the token before anyone
sees it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.core.secrets import redact
from infra.modal_hook.app_source import APP_MODULE
from infra.modal_hook.client import (
    SERVER_URL_VARIABLE,
    TOKEN_ID_VARIABLE,
    TOKEN_SECRET_VARIABLE,
    ModalCredentials,
)
from modal_app import contract

log = logging.getLogger(__name__)

_INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "SYSTEMROOT",
        "VIRTUAL_ENV",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "MODAL_CONFIG_PATH",
    }
)
_INHERITED_PREFIXES = ("LC_", "PYTHON")
OUTPUT_TAIL_LINES = 12


def deploy_environment(
    environ: Mapping[str, str],
    credentials: ModalCredentials,
    app_name: str,
    gpus: Sequence[str],
    auth_mode: str,
) -> dict[str, str]:
    """The environment of the `modal deploy` subprocess: the caller's locale, paths and proxies
    (`_INHERITED`), the Modal token and server, and the settings `modal_app/app.py` reads. No other
    variable passes, so no credential the deploy has no use for can reach the app's code."""
    kept = {
        key: value
        for key, value in environ.items()
        if key in _INHERITED or key.startswith(_INHERITED_PREFIXES)
    }
    return {
        **kept,
        SERVER_URL_VARIABLE: credentials.server_url,
        TOKEN_ID_VARIABLE: credentials.token_id.reveal(),
        TOKEN_SECRET_VARIABLE: credentials.token_secret.reveal(),
        contract.APP_NAME_VARIABLE: app_name,
        contract.GPUS_VARIABLE: ",".join(gpus),
        contract.AUTH_MODE_VARIABLE: auth_mode,
        "NO_COLOR": "1",  # plain text, for the error message that quotes its last lines
        "TERM": "dumb",
        "COLUMNS": "200",
    }


@dataclass(frozen=True)
class DeployRun:
    """How one `modal deploy` ended; `output` is redacted of the token."""

    succeeded: bool
    output: str
    exit_text: str


def run_modal_deploy(
    *,
    root: Path,
    environ: Mapping[str, str],
    credentials: ModalCredentials,
    environment: str,
    app_name: str,
    gpus: Sequence[str],
    auth_mode: str,
    tag: str,
    timeout_s: float,
) -> DeployRun:
    """`modal deploy -m modal_app.app` from `root`, into `environment`, tagged `tag`."""
    command = [
        sys.executable,
        "-m",
        "modal",
        "deploy",
        "-m",
        APP_MODULE,
        "--env",
        environment,
        "--name",
        app_name,
        "--tag",
        tag,
    ]
    env = deploy_environment(environ, credentials, app_name, gpus, auth_mode)
    tokens = (credentials.token_id.reveal(), credentials.token_secret.reveal())
    try:
        result = subprocess.run(
            command,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return DeployRun(False, "", f"did not finish within {timeout_s:g} s")
    if result.returncode == 0:
        for line in tail(redact(result.stdout, tokens)):
            log.info("modal deploy: %s", line)
        return DeployRun(True, "", "")
    output = redact(result.stdout + "\n" + result.stderr, tokens)
    return DeployRun(False, output, f"exited {result.returncode}")


def tail(text: str) -> list[str]:
    """The last lines of a command's output worth quoting."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return lines[-OUTPUT_TAIL_LINES:]
