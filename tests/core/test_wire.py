"""Pulumi's wire markers as the core spells them, checked against the installed SDK."""

from __future__ import annotations

import pulumi.output
from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from infra.core import wire


def test_the_markers_are_the_sdks() -> None:
    assert wire.UNKNOWN == rpc.UNKNOWN
    assert wire.SECRET_SIG_KEY == rpc._special_sig_key  # noqa: SLF001
    assert wire.SECRET_SIG == rpc._special_secret_sig  # noqa: SLF001


def test_an_unknown_is_recognised_in_both_forms_the_engine_hands_a_provider() -> None:
    """Under mocks a provider sees the wire string; under the real dynamic provider host it sees
    what `deserialize_properties(..., keep_unknowns=True)` makes of it (pulumi/dynamic/__main__.py,
    Check and Diff), a `pulumi.output.Unknown`."""
    struct = struct_pb2.Struct()
    struct.update({"name": rpc.UNKNOWN, "values": {"AWS_ROLE_ARN": rpc.UNKNOWN, "B": "b"}})
    as_the_host_passes_it = rpc.deserialize_properties(struct, True)
    assert isinstance(as_the_host_passes_it["name"], pulumi.output.Unknown)
    assert wire.is_unknown(as_the_host_passes_it["name"])
    assert wire.is_unknown(rpc.UNKNOWN)
    assert wire.contains_unknown(as_the_host_passes_it["values"])
    assert not wire.is_unknown("b") and not wire.contains_unknown({"B": "b"})


def test_unwrap_and_mask_understand_every_envelope_form() -> None:
    inner = {"k": wire.envelope("s3cr3t-value")}
    exported = {wire.SECRET_SIG_KEY: wire.SECRET_SIG, "plaintext": '"from-export"'}
    still_encrypted = {wire.SECRET_SIG_KEY: wire.SECRET_SIG, "ciphertext": "AAAA"}
    assert wire.unwrap({"a": inner, "b": exported, "c": still_encrypted}) == {
        "a": {"k": "s3cr3t-value"},
        "b": "from-export",
        "c": None,
    }
    masked, paths = wire.mask_secrets({"a": inner, "l": [wire.envelope(1)]})
    assert masked == {"a": {"k": "[secret]"}, "l": ["[secret]"]}
    assert paths == ["a.k", "l.0"]
