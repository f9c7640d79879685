"""What a running job may use, handed out lazily so a job touches only what it needs.

Parsing a payload may read the settings (pure: environment variables) but never the store; a
job's `run` opens the store, which is the first network call. `healthcheck` only reports on the
settings and `matmul` ignores them; neither opens the store, so both run with no secret and no
network, locally and in CI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from modal_app import cost, options
from modal_app.accelerator import Accelerator, detect
from modal_app.aws import s3_client
from modal_app.settings import Settings
from modal_app.storage import JobStore, S3JobStore

StoreFactory = Callable[[Settings, Mapping[str, str], str], JobStore]


def s3_store(settings: Settings, environ: Mapping[str, str], session: str) -> JobStore:
    return S3JobStore(s3_client(settings, environ, session), settings.bucket)


class JobContext:
    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        store_factory: StoreFactory = s3_store,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._store_factory = store_factory
        self._settings: Settings | None = None
        self._accelerator = accelerator

    def settings(self) -> Settings:
        """The runtime secret's settings; raises `SettingsError` naming every bad key."""
        if self._settings is None:
            self._settings = Settings.from_env(self.environ)
        return self._settings

    def store(self, session: str) -> JobStore:
        """Storage acting as the runtime principal; `session` names the job in CloudTrail."""
        return self._store_factory(self.settings(), self.environ, session)

    def accelerator(self) -> Accelerator:
        if self._accelerator is None:
            self._accelerator = detect()
        return self._accelerator

    def cost_devices(self) -> tuple[str, ...]:
        """The devices a payload's cost must fit (`modal_app.cost`): in a GPU container, every GPU
        type the app is deployed with (`RENTAGPU_GPUS`, baked into the image at deploy time),
        because Modal may place the next try on any of them; without a GPU, the CPU."""
        gpus = options.gpu_choices(self.environ)
        return cost.devices_for(gpus, self.accelerator().is_gpu)
