"""Tests against the real GitHub, AWS and Modal. Each is marked `cloud` and skips, saying what it
needs, unless those credentials were in the environment when pytest started. All are read-only:
they check a deployed stack or ask a cloud to validate what the program renders, and change
nothing."""

from __future__ import annotations

import pytest

from tests.conftest import CLOUD_CREDENTIALS


def require(*names: str) -> dict[str, str]:
    """The named credentials, or skip the test naming the ones that are missing."""
    missing = [n for n in names if not CLOUD_CREDENTIALS.get(n)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (a real-cloud test; see README: Testing)")
    return {n: CLOUD_CREDENTIALS[n] for n in names}
