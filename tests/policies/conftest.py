"""Both stacks rendered once per session (the real program under Pulumi mocks)."""

from __future__ import annotations

import pytest

from infra.core.config import parse_config
from infra.tools.offline import Rendering, render
from tests.stacks import raw_config


@pytest.fixture(scope="session")
def raw_configs() -> dict[str, dict]:
    """Valid raw configs for dev and prod, shaped as `pulumi config` stores them."""
    return {stack: raw_config(stack) for stack in ("dev", "prod")}


@pytest.fixture(scope="session")
def renderings(raw_configs) -> dict[str, Rendering]:
    return {stack: render(parse_config(stack, raw)) for stack, raw in raw_configs.items()}
