"""A room participant that only listens, for the room and translation tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect


async def listen(url: str, until: asyncio.Event) -> list[dict[str, Any]]:
    async with connect(url) as ws:
        messages = [json.loads(await ws.recv())]
        reader = asyncio.ensure_future(_collect(ws, messages))
        await until.wait()
        await asyncio.sleep(1.0)
        await ws.send('{"type": "close"}')
        await asyncio.wait_for(reader, 10)
        return messages


async def _collect(ws: Any, messages: list[dict[str, Any]]) -> None:
    async for text in ws:
        messages.append(json.loads(text))
