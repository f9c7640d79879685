"""A server on 127.0.0.1 that speaks HTTP/2 but is not Modal: every request gets an HTTP status
and an HTML body, as a wrong `MODAL_SERVER_URL` (a web server, a proxy, another API) would answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import h2.config
import h2.connection
import h2.events
import pytest


class NotModalServer:
    def __init__(self, status: int = 404) -> None:
        self.status = status
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NotModalServer:
        ready: Future[int] = Future()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        self.port = ready.result(timeout=10)
        return self

    def _run(self, ready: Future[int]) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            ready.set_result(self._server.sockets[0].getsockname()[1])

        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        connection.initiate_connection()
        writer.write(connection.data_to_send())
        body = b"<html><body>404 Not Found</body></html>"
        while not reader.at_eof():
            data = await reader.read(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = dict(event.headers)
                    self.requests.append(headers.get(b":path", b"").decode())
                    connection.send_headers(
                        event.stream_id,
                        [(":status", str(self.status)), ("content-type", "text/html")],
                    )
                    connection.send_data(event.stream_id, body, end_stream=True)
            writer.write(connection.data_to_send())
            await writer.drain()
        writer.close()

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def not_modal_factory() -> Iterator[Callable[[int], NotModalServer]]:
    """Start servers that answer every request with the given HTTP status."""
    started: list[NotModalServer] = []

    def start(status: int = 404) -> NotModalServer:
        server = NotModalServer(status).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
