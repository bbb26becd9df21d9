"""One port for everything: each connection's first request line decides who serves it.

A request for the audio API (a path under ``/v1/audio/``, whatever its method: its uploads
are ``POST`` bodies, which websockets does not read) goes to uvicorn's h11 protocol running
an ASGI app; websockets serves everything else (WebSocket handshakes, the page, health,
metrics, and the 405 for other methods). The connection is handed over at the transport
before either has read a byte, so each library parses the request itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState
from websockets.asyncio.server import ServerConnection

FIRST_LINE_TIMEOUT_S = 10.0
"""A connection that sends no request line in this long is dropped."""
MAX_REQUEST_LINE_BYTES = 8192
"""A longer request line is left to websockets, which refuses it."""
HTTP_DOOR_PREFIX = b"/v1/audio/"


class HttpDoor:
    """uvicorn's HTTP/1.1 protocol for the connections websockets does not take."""

    def __init__(self, app: ASGIApp, *, keep_alive_s: float = 5.0, max_head_bytes: int = 65536):
        self._config = Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=int(keep_alive_s),
            h11_max_incomplete_event_size=max_head_bytes,
        )
        self._config.load()
        self._state = ServerState()

    def protocol(self) -> asyncio.Protocol:
        return H11Protocol(self._config, self._state, {})

    async def close(self) -> None:
        """Ends idle keep-alive connections and lets requests in progress finish."""
        for connection in list(self._state.connections):
            connection.shutdown()
        if self._state.tasks:
            await asyncio.wait(list(self._state.tasks), timeout=5)


def sorting_connection(http: Callable[[], asyncio.Protocol]) -> type[ServerConnection]:
    """A :class:`ServerConnection` that first reads the request line; for a path under
    ``/v1/audio/`` it gives the transport to ``http()`` instead
    (``serve(create_connection=...)``)."""

    class SortingConnection(ServerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head: bytearray | None = bytearray()
            self._held: asyncio.Transport | None = None
            self._timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self._held = transport
            self._timer = self.loop.call_later(FIRST_LINE_TIMEOUT_S, transport.abort)

        def data_received(self, data: bytes) -> None:
            if self._head is None:
                super().data_received(data)
                return
            self._head += data
            if b"\n" not in self._head and len(self._head) <= MAX_REQUEST_LINE_BYTES:
                return  # the request line is not all here yet
            head, transport = bytes(self._head), self._held
            assert transport is not None
            self._head = None
            if self._timer is not None:
                self._timer.cancel()
            if not for_http_door(head):
                super().connection_made(transport)
                super().data_received(head)
                return
            protocol = http()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            protocol.data_received(head)

        def eof_received(self) -> None:
            if self._head is not None:
                return  # closed before a request: the transport closes, nothing to serve
            super().eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head is not None:  # never handed to either library
                if self._timer is not None:
                    self._timer.cancel()
                return
            super().connection_lost(exc)

    return SortingConnection


def for_http_door(head: bytes) -> bool:
    """Whether a request, from its first bytes, is for the audio API."""
    line = head.split(b"\n", 1)[0]
    parts = line.split(b" ")
    return len(parts) == 3 and parts[1].startswith(HTTP_DOOR_PREFIX)
