"""What a session needs of its client's connection, whatever carries it.

A WebSocket (:class:`websockets.asyncio.server.ServerConnection`) is one; a gRPC call
(``ingest.grpc_wire``) is another. A connection the peer has left raises
:class:`websockets.exceptions.ConnectionClosed` from ``recv`` and ``send``, on either.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol


class Wire(Protocol):
    @property
    def close_code(self) -> int | None:
        """The session's close code once closed (None: not closed, or closed abnormally)."""
        ...

    async def recv(self) -> str | bytes:
        """The client's next frame: text (a command) or bytes (audio)."""
        ...

    async def send(self, message: str) -> None:
        """One text frame to the client."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Ends the connection with protocol v1's close ``code``."""
        ...

    async def ping(self) -> Awaitable[float]:
        """Asks the client to confirm what it was sent; the awaitable completes when it has."""
        ...

    async def wait_closed(self) -> None:
        """Returns once the connection is closed."""
        ...
