"""One port for everything: each connection's first request line decides who serves it.

A request for the audio API (a path under ``/v1/audio/``, whatever its method: its uploads
are ``POST`` bodies, which websockets does not read) goes to uvicorn's h11 protocol running
an ASGI app; websockets serves everything else (WebSocket handshakes, the page, health,
metrics, and the 405 for other methods). The connection is handed over at the transport
before either has read a byte, so each library parses the request itself.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState
from websockets.asyncio.server import ServerConnection

from ingest import logger
from ingest.options import SessionLimits

FIRST_LINE_TIMEOUT_S = 10.0
"""A connection that sends no request line in this long is dropped."""
HEAD_TIMEOUT_S = 10.0
"""An audio API request whose headers are not all in this long after the connection opened
is dropped (a byte every few seconds kept 20,000 of them open). WebSocket handshakes have
websockets' own ``open_timeout``, the same 10 s."""
REFUSALS_LOGGED_EVERY_S = 60.0
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


class ConnectionGate:
    """Open connections, counted for the node and per client address: one past either cap is
    refused at once, so no client can take the node's file descriptors (or its ``/healthz``)
    from the others. Without I/O."""

    def __init__(self, *, per_node: int, per_address: int) -> None:
        if per_node < 1 or per_address < 1:
            raise ValueError("connection caps must be at least 1")
        self.per_node = per_node
        self.per_address = per_address
        self.open = 0
        self._by_address: dict[str, int] = {}
        self.refused = 0

    def admit(self, address: str) -> bool:
        if self.open >= self.per_node or self._by_address.get(address, 0) >= self.per_address:
            self.refused += 1
            return False
        self.open += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return True

    def release(self, address: str) -> None:
        self.open -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]


FILES_RESERVED = 512
"""File descriptors kept for what is not a client connection (Redis pools, logs, gRPC)."""


def connection_gate(limits: SessionLimits) -> ConnectionGate:
    """The caps of ``limits``, the node's within the process's open-file limit: past that,
    accepting fails with EMFILE and nothing, health checks included, gets in."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    per_node = limits.max_connections
    if soft != resource.RLIM_INFINITY and per_node > soft - FILES_RESERVED:
        per_node = max(1, soft - FILES_RESERVED)
        logger.warning(
            "at most %d connections (the open-file limit is %d); raise it (ulimit -n) for %d",
            per_node, soft, limits.max_connections,
        )  # fmt: skip
    return ConnectionGate(per_node=per_node, per_address=limits.max_connections_per_address)


class RefusalLog:
    """Says that connections are being refused once, then at most once a period with how
    many were (a flood must not become a flood of log lines)."""

    def __init__(self, *, every_s: float = REFUSALS_LOGGED_EVERY_S) -> None:
        self._every_s = every_s
        self._logged_at: float | None = None
        self._unsaid = 0

    def refused(self, gate: ConnectionGate, address: str, *, now: float) -> None:
        self._unsaid += 1
        if self._logged_at is not None and now - self._logged_at < self._every_s:
            return
        logger.warning(
            "refused %d connection(s) over the caps (%d open; at most %d per node, %d per "
            "address; last from %s)",
            self._unsaid, gate.open, gate.per_node, gate.per_address, address,
        )  # fmt: skip
        self._logged_at = now
        self._unsaid = 0


class _CountedHttp(asyncio.Protocol):
    """The audio API's protocol, with the connection counted until it is lost and dropped
    when its headers are not all in by ``head_deadline`` (the loop's clock)."""

    def __init__(
        self,
        inner: asyncio.Protocol,
        loop: asyncio.AbstractEventLoop,
        head_deadline: float,
        release: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._loop = loop
        self._head_deadline = head_deadline
        self._release: Callable[[], None] | None = release
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._timer = self._loop.call_at(self._head_deadline, transport.abort)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._release is not None:
            self._release()
            self._release = None
        self._inner.connection_lost(exc)


def sorting_connection(
    http: Callable[[], asyncio.Protocol], gate: ConnectionGate | None = None
) -> type[ServerConnection]:
    """A :class:`ServerConnection` that first reads the request line; for a path under
    ``/v1/audio/`` it gives the transport to ``http()`` instead
    (``serve(create_connection=...)``). ``gate``: the caps on open connections (None: none)."""
    refusals = RefusalLog()

    class SortingConnection(ServerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head: bytearray | None = bytearray()
            self._held: asyncio.Transport | None = None
            self._timer: asyncio.TimerHandle | None = None
            self._address: str | None = None
            """The client's address while its connection is counted."""
            self._opened_at = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            if gate is not None:
                peer = transport.get_extra_info("peername")
                address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
                if not gate.admit(address):
                    refusals.refused(gate, address, now=time.monotonic())
                    transport.abort()  # never handed on: its loss is the end of it
                    return
                self._address = address
            self._held = transport
            self._opened_at = self.loop.time()
            self._timer = self.loop.call_later(FIRST_LINE_TIMEOUT_S, transport.abort)

        def _release(self) -> None:
            if gate is not None and self._address is not None:
                gate.release(self._address)
                self._address = None

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
            address, self._address = self._address, None  # counted by the HTTP side now
            protocol = _CountedHttp(
                http(),
                self.loop,
                self._opened_at + HEAD_TIMEOUT_S,
                (lambda: gate.release(address)) if gate and address is not None else _nothing,
            )
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            protocol.data_received(head)

        def eof_received(self) -> None:
            if self._head is not None:
                return  # closed before a request: the transport closes, nothing to serve
            super().eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            self._release()
            if self._head is not None:  # never handed to either library
                if self._timer is not None:
                    self._timer.cancel()
                return
            super().connection_lost(exc)

    return SortingConnection


def _nothing() -> None:
    return None


def for_http_door(head: bytes) -> bool:
    """Whether a request, from its first bytes, is for the audio API."""
    line = head.split(b"\n", 1)[0]
    parts = line.split(b" ")
    return len(parts) == 3 and parts[1].startswith(HTTP_DOOR_PREFIX)
