"""The ingest node's two Redis paths: batched audio writes and the pub/sub relay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio
import redis.exceptions

from ingest import logger
from shared import keys
from shared.errors import SchemaError
from shared.schema import (
    AudioAppended,
    AudioStreamEntry,
    SessionEvent,
    SessionOpened,
    decode_event,
)

AUDIO_STREAM_MAX_ENTRIES = 30000
"""Safety cap per session stream (the segmenter deletes entries as it consumes them)."""


class AudioWriter:
    """Appends audio to Redis without a round trip per frame.

    Handlers put entries on a bounded queue and return at once; one task drains whatever has
    accumulated, merges consecutive audio of a session into one entry, and sends all of it
    in a single pipeline.
    """

    def __init__(self, client: redis.asyncio.Redis, *, max_queued: int = 10000) -> None:
        self._redis = client
        self._queue: asyncio.Queue[tuple[str, AudioStreamEntry]] = asyncio.Queue(max_queued)
        self.batches = 0
        self.entries_written = 0

    async def open_session(self, opened: SessionOpened) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xgroup_create(
            keys.audio_stream(opened.session_id), keys.SEGMENTER_GROUP, id="0", mkstream=True
        )
        pipe.xadd(keys.SESSIONS_STREAM, opened.encode())  # type: ignore[arg-type]
        await pipe.execute()

    async def append(self, session_id: str, entry: AudioStreamEntry) -> None:
        await self._queue.put((session_id, entry))

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[tuple[str, AudioStreamEntry]]) -> None:
        merged: dict[str, list[AudioStreamEntry]] = {}
        for session_id, entry in batch:
            entries = merged.setdefault(session_id, [])
            if (
                entries
                and isinstance(entry, AudioAppended)
                and isinstance(entries[-1], AudioAppended)
            ):
                entries[-1] = AudioAppended(entries[-1].pcm + entry.pcm, entry.received_at)
            else:
                entries.append(entry)
        pipe = self._redis.pipeline(transaction=False)
        for session_id, entries in merged.items():
            for entry in entries:
                pipe.xadd(
                    keys.audio_stream(session_id),
                    entry.encode(),  # type: ignore[arg-type]
                    maxlen=AUDIO_STREAM_MAX_ENTRIES,
                    approximate=True,
                )
                self.entries_written += 1
        await pipe.execute()
        self.batches += 1


EventHandler = Callable[[SessionEvent], None]


class EventRelay:
    """One pub/sub connection per ingest node, routing each session channel to its handler."""

    def __init__(self, client: redis.asyncio.Redis, node_channel: str) -> None:
        self._pubsub = client.pubsub()
        self._node_channel = node_channel
        self._handlers: dict[str, EventHandler] = {}
        self._confirmed: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        """Opens the connection (before ``run``) with the node's own channel."""
        await self._pubsub.subscribe(self._node_channel)

    async def subscribe(self, session_id: str, handler: EventHandler) -> None:
        channel = keys.session_channel(session_id)
        self._handlers[channel] = handler
        await self._subscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        confirmed = self._confirmed[channel] = asyncio.Event()
        await self._pubsub.subscribe(channel)
        await asyncio.wait_for(confirmed.wait(), timeout=10)

    async def unsubscribe(self, session_id: str) -> None:
        channel = keys.session_channel(session_id)
        self._handlers.pop(channel, None)
        self._confirmed.pop(channel, None)
        await self._pubsub.unsubscribe(channel)

    async def run(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=5.0)
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "subscribe":
                event = self._confirmed.get(channel)
                if event is not None:
                    event.set()
                continue
            if message["type"] != "message":
                continue
            handler = self._handlers.get(channel)
            if handler is None:
                continue
            try:
                decoded = decode_event(message["data"])
            except SchemaError:
                logger.exception("dropping undecodable event on %s", channel)
                continue
            handler(decoded)

    async def close(self) -> None:
        try:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        except redis.exceptions.ConnectionError:
            logger.warning("pub/sub connection already gone at shutdown")
