"""Opening what the program sealed for GitHub, as GitHub would: with the private key of the place
the secret lives (the mocked GitHub's, `infra.tools.offline.mock_github_key`)."""

from __future__ import annotations

import base64

from nacl.public import SealedBox

from infra.core import resource_types as types
from infra.tools.offline import Rendering, mock_github_key


def github_secret(rendering: Rendering, location: str, secret_name: str):
    """The secret resource `secret_name` of an environment, or of the repository."""
    if location == "repository":
        found = [
            r
            for r in rendering.of_type(types.GITHUB_REPOSITORY_SECRET)
            if r.inputs["secretName"] == secret_name
        ]
    else:
        found = [
            r
            for r in rendering.of_type(types.GITHUB_ENVIRONMENT_SECRET)
            if r.inputs["environment"] == location and r.inputs["secretName"] == secret_name
        ]
    assert len(found) == 1, (location, secret_name, found)
    return found[0]


def open_secret(rendering: Rendering, location: str, secret_name: str) -> str:
    """The plaintext GitHub would store for that secret."""
    sealed = github_secret(rendering, location, secret_name).raw_inputs["valueEncrypted"]
    box = SealedBox(mock_github_key(location))
    return box.decrypt(base64.b64decode(sealed)).decode()
