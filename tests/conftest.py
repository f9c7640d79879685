"""Shared test setup. Fixtures that start local servers live in tests/fakes/ and are imported by
the conftest of each test folder that needs them, so a test run starts only the servers it uses."""

import os

# No test may reach a real cloud or read a developer's own profile by accident. The credentials
# are set aside here; only tests marked `cloud` (tests/cloud/) take them back, explicitly.
CLOUD_CREDENTIALS: dict[str, str] = {}
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
for _name in (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "MODAL_TOKEN_ID",
    "MODAL_TOKEN_SECRET",
    "MODAL_SERVER_URL",
    "MODAL_PROFILE",
    "GITHUB_TOKEN",
):
    if _name in os.environ:
        CLOUD_CREDENTIALS[_name] = os.environ.pop(_name)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def renderings():
    """Both stacks rendered under mocks, once per session: {"dev": Rendering, "prod": Rendering}."""
    from infra.tools.offline import render
    from tests.stacks import stack_config

    return {stack: render(stack_config(stack)) for stack in ("dev", "prod")}


# The fakes' fixtures, registered once for the whole session (a fixture imported into several
# conftest files is a separate fixture in each, and a session-scoped server would start twice).
# Local servers start only for the tests that ask for them.
pytest_plugins = (
    "tests.fakes.modal_fixtures",
    "tests.fakes.modal_deploy",
    "tests.fakes.aws_fixtures",
    "tests.fakes.provider_host",
    "tests.fakes.not_modal",
    "tests.fakes.github_api",
)
