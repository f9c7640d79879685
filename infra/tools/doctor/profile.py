"""The Modal profile a laptop's `modal` commands use, read the way modal 1.6.4 reads it.

`modal/config.py`: the file is MODAL_CONFIG_PATH or `~/.modal.toml` (`user_config_path`); the
profile is MODAL_PROFILE, else the one marked `active = true`, else `default`
(`_config_active_profile`); each setting can be overridden by `MODAL_<SETTING>`, so MODAL_TOKEN_ID,
MODAL_TOKEN_SECRET, MODAL_ENVIRONMENT and MODAL_SERVER_URL win over the file. Read here with the
standard library (`tomllib`), without importing `modal`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.core.secrets import SecretStr, mask_id


@dataclass(frozen=True)
class ModalProfile:
    path: Path  # the config file, whether or not it exists
    exists: bool
    name: str
    token_id: SecretStr | None = field(repr=False)
    token_secret: SecretStr | None = field(repr=False)
    token_from_environment: bool
    environment: str  # the default environment, "" when unset
    environment_from_variable: bool
    server_url: str
    problem: str = ""  # the file could not be read

    @property
    def masked_token(self) -> str:
        return mask_id(self.token_id.reveal()) if self.token_id else "none"

    def environ(self) -> dict[str, str]:
        """What `run_modal` needs to call Modal as this profile."""
        values = {"MODAL_SERVER_URL": self.server_url}
        if self.token_id and self.token_secret:
            values["MODAL_TOKEN_ID"] = self.token_id.reveal()
            values["MODAL_TOKEN_SECRET"] = self.token_secret.reveal()
        return values


def config_path(home: Path, environ: Mapping[str, str]) -> Path:
    configured = environ.get("MODAL_CONFIG_PATH", "")
    return Path(configured).expanduser() if configured else home / ".modal.toml"


def read_profile(home: Path, environ: Mapping[str, str]) -> ModalProfile:
    path = config_path(home, environ)
    document: dict = {}
    problem = ""
    if path.is_file():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            problem = f"{path} is not readable TOML ({type(error).__name__})"
    profiles = {k: v for k, v in document.items() if isinstance(v, dict)}
    name = environ.get("MODAL_PROFILE") or next(
        (k for k, v in profiles.items() if v.get("active") is True), "default"
    )
    section = profiles.get(name, {})
    from_env = bool(environ.get("MODAL_TOKEN_ID") and environ.get("MODAL_TOKEN_SECRET"))
    token_id = environ.get("MODAL_TOKEN_ID") if from_env else section.get("token_id")
    token_secret = environ.get("MODAL_TOKEN_SECRET") if from_env else section.get("token_secret")
    variable = environ.get("MODAL_ENVIRONMENT", "")
    return ModalProfile(
        path=path,
        exists=path.is_file(),
        name=name,
        token_id=SecretStr(str(token_id)) if token_id else None,
        token_secret=SecretStr(str(token_secret)) if token_secret else None,
        token_from_environment=from_env,
        environment=variable or str(section.get("environment") or ""),
        environment_from_variable=bool(variable),
        server_url=environ.get("MODAL_SERVER_URL") or str(section.get("server_url") or ""),
        problem=problem,
    )
