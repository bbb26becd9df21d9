"""The ingest node's two Redis paths: one ordered, batched writer and the pub/sub relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import redis.asyncio
import redis.exceptions

from ingest import logger
from ingest.session_link import HOLDER_CHECK, Hold
from shared import keys
from shared.errors import SchemaError
from shared.resilience import REDIS_DOWN, Delays
from shared.schema import (
    AudioAppended,
    AudioStreamEntry,
    PipelineEvent,
    SessionOpened,
    decode_event,
)

AUDIO_STREAM_MAX_ENTRIES = 30000
"""Safety cap per session stream (the segmenter deletes entries as it consumes them)."""


# KEYS: attachment, audio stream, resumable record. ARGV: the writer's nonce, maxlen, client
# samples stored after this entry ('' when unchanged), then the entry's fields.
# 1: written; -1: the stream is gone (the session closed); else a Hold.
_APPEND_AUDIO = (
    HOLDER_CHECK
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], 'samples', ARGV[3])
end
return 1
"""
)


@dataclass(frozen=True, slots=True)
class _Append:
    session_id: str
    entry: AudioStreamEntry
    holder: str
    """The nonce of the connection that holds the session (see :mod:`ingest.session_link`)."""
    samples: int | None
    """Client samples stored once this entry is; None for entries that carry no audio."""


@dataclass(frozen=True, slots=True)
class _Publish:
    channel: str
    data: bytes
    log: str | None = None
    """A stream the message is also appended to (a room's log of finals)."""


class WriterStopped(redis.exceptions.ConnectionError):
    """The node's writer is gone: nothing queued will reach Redis (the node is ending)."""


class RedisWriter:
    """Appends audio and publishes room events without a round trip per frame.

    Handlers put work on a queue and return at once; one task drains whatever has
    accumulated, merges consecutive audio of a session into one entry, and sends it all, in
    order, in a single pipeline.

    Bounds: a session has at most ``max_queued_per_session`` appends queued; one more waits
    for the writer (backpressure on that session's reader only, never on other sessions).
    Publishes (room events) are at most ``max_queued_publishes``; one more is dropped, counted
    in ``dropped_publishes`` and logged once per overflow.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        max_queued_per_session: int = 256,
        max_queued_publishes: int = 10000,
        on_lost: Callable[[], None] = lambda: None,
        on_hold_lost: Callable[[str, Hold], None] = lambda holder, hold: None,
    ) -> None:
        self._redis = client
        self._queue: asyncio.Queue[_Append | _Publish] = asyncio.Queue()
        self._per_session = max_queued_per_session
        self._max_publishes = max_queued_publishes
        self._queued: dict[str, int] = {}
        self._drained: dict[str, asyncio.Event] = {}
        self._publishes = 0
        self._overflowing = False
        self.dropped_publishes = 0
        self.stopped = False
        self._on_lost = on_lost
        self._on_hold_lost = on_hold_lost

    async def open_session(self, opened: SessionOpened) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xgroup_create(
            keys.audio_stream(opened.session_id), keys.SEGMENTER_GROUP, id="0", mkstream=True
        )
        pipe.xadd(keys.SESSIONS_STREAM, opened.encode())  # type: ignore[arg-type]
        await pipe.execute()

    async def forget_session(self, session_id: str, utterances: int) -> None:
        """Every final is delivered: the session's keys go now instead of at their expiry."""
        names = [
            keys.session_state(session_id),
            keys.audio_stream(session_id),
            keys.turn_context(session_id),
        ]
        names += [keys.commit_key(session_id, index) for index in range(utterances)]
        try:
            await self._redis.unlink(*names)
        except REDIS_DOWN:
            logger.warning("could not remove the keys of %s; they expire", session_id)

    async def append(
        self, session_id: str, entry: AudioStreamEntry, *, holder: str, samples: int | None = None
    ) -> None:
        """Queues an entry for the session's audio stream, written only while ``holder`` still
        holds the session; ``samples``: the client's samples stored once it is written.
        Waits while the session has its quota queued; raises WriterStopped once the writer
        is gone."""
        while not self.stopped and self._queued.get(session_id, 0) >= self._per_session:
            drained = self._drained.setdefault(session_id, asyncio.Event())
            drained.clear()
            await drained.wait()
        if self.stopped:
            raise WriterStopped("the ingest node's Redis writer has stopped")
        self._queued[session_id] = self._queued.get(session_id, 0) + 1
        self._queue.put_nowait(_Append(session_id, entry, holder, samples))

    def publish(self, channel: str, data: bytes, *, log: str | None = None) -> None:
        """Queued behind everything appended before it; dropped (and counted) beyond the
        bound. ``log``: a stream to append the message to as well (capped, expiring)."""
        if self.stopped:
            return
        if self._publishes >= self._max_publishes:
            self.dropped_publishes += 1
            if not self._overflowing:
                self._overflowing = True
                logger.warning("Redis writer is behind: dropping room events on %s", channel)
            return
        self._publishes += 1
        self._queue.put_nowait(_Publish(channel, data, log))

    def _done(self, batch: list[_Append | _Publish]) -> None:
        for item in batch:
            if isinstance(item, _Publish):
                self._publishes -= 1
                continue
            left = self._queued[item.session_id] - 1
            if left:
                self._queued[item.session_id] = left
            else:
                del self._queued[item.session_id]
            event = self._drained.get(item.session_id)
            if event is not None:
                event.set()  # its waiters look again
                if not left:
                    del self._drained[item.session_id]
        if self._publishes < self._max_publishes // 2:
            self._overflowing = False

    async def run(self) -> None:
        try:
            while True:
                batch = [await self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                try:
                    await self._write(batch)
                except REDIS_DOWN:
                    # The sessions of this batch are ended by on_lost; nothing to retry.
                    logger.warning("lost Redis while writing %d items", len(batch), exc_info=True)
                    self._on_lost()
                finally:
                    self._done(batch)
        finally:
            self.stopped = True
            for event in self._drained.values():
                event.set()

    async def _write(self, batch: list[_Append | _Publish]) -> None:
        merged: list[_Append | _Publish] = []
        last_audio: dict[str, int] = {}  # session -> index in merged of its open audio entry
        for item in batch:
            if isinstance(item, _Append) and isinstance(item.entry, AudioAppended):
                index = last_audio.get(item.session_id)
                previous = merged[index] if index is not None else None
                if isinstance(previous, _Append) and isinstance(previous.entry, AudioAppended):
                    joined = AudioAppended(
                        previous.entry.pcm + item.entry.pcm, item.entry.received_at
                    )
                    merged[index] = _Append(  # type: ignore[index]
                        item.session_id, joined, item.holder, item.samples
                    )
                    continue
                last_audio[item.session_id] = len(merged)
            elif isinstance(item, _Append):
                last_audio.pop(item.session_id, None)
            merged.append(item)
        pipe = self._redis.pipeline(transaction=False)
        fenced: list[tuple[int, str]] = []  # (answer index, holder) of each fenced append
        for item in merged:
            if isinstance(item, _Publish):
                if item.log is not None:
                    pipe.xadd(
                        item.log, {"e": item.data}, maxlen=keys.ROOM_LOG_KEPT, approximate=True
                    )
                    pipe.expire(item.log, keys.ROOM_LOG_TTL_S)
                pipe.publish(item.channel, item.data)
            else:
                fenced.append((len(pipe.command_stack), item.holder))
                sid = item.session_id
                fields = [part for pair in item.entry.encode().items() for part in pair]
                pipe.eval(  # a stream lost with Redis's data is not made anew
                    _APPEND_AUDIO,
                    3,
                    keys.attachment(sid),
                    keys.audio_stream(sid),
                    keys.resumable_session(sid),
                    item.holder,
                    AUDIO_STREAM_MAX_ENTRIES,
                    "" if item.samples is None else item.samples,
                    *fields,
                )
        answers = await pipe.execute()
        lost = {
            holder: Hold(answers[index])
            for index, holder in fenced
            if answers[index] in (Hold.GONE, Hold.SUPERSEDED)
        }
        for holder, hold in lost.items():
            self._on_hold_lost(holder, hold)


EventHandler = Callable[[PipelineEvent], None]


class EventRelay:
    """One pub/sub connection per ingest node; each channel fans out to its subscribers
    (a session channel has one, a room channel one per participant on this node).

    When the connection is lost the relay builds a new one once Redis answers again and
    subscribes it to every channel still wanted; meanwhile ``subscribe`` fails fast.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        node_channel: str,
        *,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._on_lost = on_lost
        self._pubsub = client.pubsub()
        self._connected = True
        self._node_channel = node_channel
        self._handlers: dict[str, dict[str, EventHandler]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        """Opens the connection (before ``run``) with the node's own channel."""
        await self._pubsub.subscribe(self._node_channel)

    async def subscribe(self, channel: str, subscriber: str, handler: EventHandler) -> None:
        """Returns once Redis has confirmed the subscription."""
        if not self._connected:
            raise redis.exceptions.ConnectionError("pub/sub is reconnecting to Redis")
        handlers = self._handlers.setdefault(channel, {})
        first = not handlers
        handlers[subscriber] = handler
        if first:
            self._confirmed[channel] = asyncio.Event()
            await self._pubsub.subscribe(channel)
        await asyncio.wait_for(self._confirmed[channel].wait(), timeout=10)

    async def unsubscribe(self, channel: str, subscriber: str) -> None:
        handlers = self._handlers.get(channel, {})
        handlers.pop(subscriber, None)
        if not handlers:
            self._handlers.pop(channel, None)
            self._confirmed.pop(channel, None)
            if self._connected:
                await self._pubsub.unsubscribe(channel)

    async def run(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=5.0)
            except REDIS_DOWN:
                logger.warning("pub/sub connection to Redis lost", exc_info=True)
                self._connected = False
                self._on_lost()
                await self._reconnect()
                continue
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None:
                    confirmed.set()
                continue
            handlers = self._handlers.get(channel)
            if message["type"] != "message" or not handlers:
                continue
            try:
                event = decode_event(message["data"])
            except SchemaError:
                logger.exception("dropping undecodable event on %s", channel)
                continue
            for handler in list(handlers.values()):
                handler(event)

    async def _reconnect(self) -> None:
        """A fresh pub/sub connection once Redis answers, subscribed to what is wanted."""
        with contextlib.suppress(*REDIS_DOWN):
            await _close(self._pubsub)
        delays = Delays()
        while True:
            await asyncio.sleep(delays.next())  # backoff between attempts
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._node_channel, *self._handlers)
            except REDIS_DOWN:
                with contextlib.suppress(*REDIS_DOWN):
                    await _close(pubsub)
                continue
            self._pubsub = pubsub
            self._connected = True
            logger.info("pub/sub reconnected with %d channels", len(self._handlers))
            return

    async def close(self) -> None:
        try:
            await _close(self._pubsub)
        except redis.exceptions.ConnectionError:
            logger.warning("pub/sub connection already gone at shutdown")


async def _close(pubsub: redis.asyncio.client.PubSub) -> None:
    """``PubSub.aclose``, typed from redis-py 8.2 on and untyped before: called through one
    signature so that both ends of the supported range type-check."""
    close = cast(Callable[[], Awaitable[None]], pubsub.aclose)
    await close()
