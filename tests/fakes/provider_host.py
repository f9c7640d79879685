"""Pulumi's real dynamic provider host, `python -m pulumi.dynamic`, driven over gRPC as the engine
drives it (pkg/resource/plugin/provider_plugin.go: Configure, then Check/Diff/Create/Read/...).

What the in-process tests cannot show, this does: how the host deserializes inputs (unknowns
become `pulumi.output.Unknown`), what it sends back when a provider raises (the
`traceback.format_exc()` text), and what the provider prints on stderr (which the engine shows).
The provider is pickled with the SDK's own `serialize_provider`, exactly as a resource stores it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_KEY = "__provider"


class HostError(Exception):
    """A call the host answered with an error; `details` is exactly what the engine would print."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class CheckAnswer:
    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


class ProviderHost:
    """One host process. Values given as `rpc.UNKNOWN` reach the provider as the engine sends them."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
        env.update(environ or {})
        env["PYTHONPATH"] = str(ROOT)  # the engine runs the host from the project directory
        self._process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.dynamic"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        port = self._process.stdout.readline().decode().strip()  # type: ignore[union-attr]
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        self._stub.Configure(provider_pb2.ConfigureRequest(args=struct_pb2.Struct()))

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=60)
        except grpc.RpcError as error:
            raise HostError(error.code(), error.details()) from None

    def check(self, provider: Any, news: Mapping[str, Any]) -> CheckAnswer:
        blob = serialize_provider(provider)
        request = provider_pb2.CheckRequest(
            urn="urn:pulumi:test::rentagpu::x::r",
            olds=struct_pb2.Struct(),
            news=_struct({**news, PROVIDER_KEY: blob}),
        )
        answer = self._call("Check", request)
        inputs = rpc.deserialize_properties(answer.inputs, True)
        inputs.pop(PROVIDER_KEY, None)
        return CheckAnswer(inputs, [(f.property, f.reason) for f in answer.failures])

    def diff(self, provider: Any, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        blob = serialize_provider(provider)
        request = provider_pb2.DiffRequest(
            id="id",
            urn="urn:pulumi:test::rentagpu::x::r",
            olds=_struct({**olds, PROVIDER_KEY: blob}),
            news=_struct({**news, PROVIDER_KEY: blob}),
        )
        return self._call("Diff", request)

    def create(self, provider: Any, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        blob = serialize_provider(provider)
        request = provider_pb2.CreateRequest(
            urn="urn:pulumi:test::rentagpu::x::r", properties=_struct({**props, PROVIDER_KEY: blob})
        )
        answer = self._call("Create", request)
        return answer.id, rpc.deserialize_properties(answer.properties)

    def read(self, provider: Any, id_: str, props: Mapping[str, Any]) -> tuple[str, dict]:
        blob = serialize_provider(provider)
        request = provider_pb2.ReadRequest(
            id=id_,
            urn="urn:pulumi:test::rentagpu::x::r",
            properties=_struct({**props, PROVIDER_KEY: blob}),
        )
        answer = self._call("Read", request)
        return answer.id, rpc.deserialize_properties(answer.properties)

    def stop(self) -> str:
        """Stop the host; return everything it printed on stderr (what the engine shows)."""
        self._channel.close()
        self._process.kill()
        _, err = self._process.communicate(timeout=10)
        return err.decode()


@pytest.fixture
def provider_host_factory() -> Iterator[Any]:
    """Start hosts with a given environment (a provider reads MODAL_* from its process)."""
    started: list[ProviderHost] = []

    def start(environ: Mapping[str, str] | None = None) -> ProviderHost:
        host = ProviderHost(environ)
        started.append(host)
        return host

    yield start
    for host in started:
        try:
            host.stop()
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
