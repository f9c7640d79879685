"""SecretStr, redaction and sealing for GitHub."""

from __future__ import annotations

import base64

import pytest
from nacl.public import PrivateKey, SealedBox

from infra.core.secrets import SecretStr, seal


def test_a_sealed_value_opens_only_with_githubs_private_key() -> None:
    """GitHub's documented format: base64 of a libsodium sealed box to the base64 public key
    (docs.github.com, "Encrypting secrets for the REST API")."""
    github = PrivateKey.generate()
    public = base64.b64encode(bytes(github.public_key)).decode()
    token = SecretStr("as-" + "0" * 24)

    sealed = seal(public, token)

    assert token.reveal() not in sealed
    assert SealedBox(github).decrypt(base64.b64decode(sealed)).decode() == token.reveal()
    # Randomized: sealing twice gives two ciphertexts, both opening to the same value.
    assert seal(public, token) != sealed
    with pytest.raises(Exception):  # noqa: B017 - any failure: another key cannot open it
        SealedBox(PrivateKey.generate()).decrypt(base64.b64decode(sealed))


@pytest.mark.parametrize("key", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_a_key_that_is_not_a_public_key_is_refused_without_the_value(key) -> None:
    with pytest.raises(ValueError) as caught:
        seal(key, SecretStr("as-secret-value-xyz"))
    assert "as-secret-value-xyz" not in str(caught.value)
    assert "public key" in str(caught.value)
