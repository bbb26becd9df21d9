"""A room participant that only listens, for the room and translation tests.

It waits on what it hears, never on the clock: joined once the room's participant list has
come (the server sends it after the membership is stored), done once the test's condition
holds for what it has heard (or a bound passes; the test's assertions then say what is
missing).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

Messages = list[dict[str, Any]]


class Listener:
    def __init__(self, url: str) -> None:
        self._url = url
        self.messages: Messages = []
        self._arrived = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        self._ws = await connect(self._url)
        self._reader = asyncio.create_task(self._collect(self._ws))
        await self.wait_for(lambda heard: any(m["type"] == "room.participants" for m in heard))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._ws is not None and self._reader is not None
        await self._ws.send('{"type": "close"}')
        await asyncio.wait_for(self._reader, 10)

    async def wait_for(self, condition: Callable[[Messages], bool], timeout_s: float = 30) -> None:
        """Until ``condition(messages)`` holds, the connection ends, or ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition(self.messages):
            assert self._reader is not None
            if self._reader.done() or loop.time() >= deadline:
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self._arrived.wait()
            except TimeoutError:
                return

    async def _collect(self, ws: ClientConnection) -> None:
        async for text in ws:
            self.messages.append(json.loads(text))
            self._arrived.set()
        self._arrived.set()
