"""A connection's membership of a room: presence, and sharing its transcripts with the room."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from ingest.redis_io import EventHandler, EventRelay, RedisWriter
from shared import keys
from shared.errors import SchemaError
from shared.schema import (
    Participant,
    RoomPresence,
    RoomTranscript,
    RoomTurn,
    TranscriptResult,
    decode_event,
)

MEMBERS_TTL_S = 24 * 3600


class RoomMembership:
    """Joins on ``join()``, leaves on ``leave()``; everything goes through the room's channel,
    so participants on any ingest node see each other and nothing crosses between rooms."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        writer: RedisWriter,
        relay: EventRelay,
        room: str,
        me: Participant,
        *,
        subscriber: str,
    ) -> None:
        """``subscriber``: the connection's own id (two connections of a session may overlap
        while one resumes)."""
        self._redis = client
        self._writer = writer
        self._relay = relay
        self.room = room
        self.me = me
        self._channel = keys.room_channel(room)
        self._subscriber = subscriber

    async def join(self, handler: EventHandler) -> list[Participant]:
        """Subscribes, announces itself and returns who is in the room (itself included)."""
        await self._relay.subscribe(self._channel, self._subscriber, handler)
        members = keys.room_members(self.room)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(members, self.me.session_id, self.me.encode())
        pipe.expire(members, MEMBERS_TTL_S)
        pipe.hgetall(members)
        *_, current = await pipe.execute()
        self._writer.publish(self._channel, RoomPresence(True, self.me).encode())
        participants = []
        for data in current.values():
            try:
                participants.append(Participant.decode(data))
            except SchemaError:
                continue  # a member written by an incompatible version: not shown
        return sorted(participants, key=lambda p: (p.name, p.session_id))

    def share(self, is_final: bool, result: TranscriptResult) -> None:
        self._writer.publish(
            self._channel,
            RoomTranscript(self.me, is_final, result).encode(),
            log=keys.room_log(self.room) if is_final else None,
        )

    def share_turn(
        self, turn_index: int, utterance_indexes: tuple[int, ...], result: TranscriptResult
    ) -> None:
        self._writer.publish(
            self._channel,
            RoomTurn(self.me, turn_index, utterance_indexes, result).encode(),
            log=keys.room_log(self.room),
        )

    async def finals_since(self, since: float) -> list[RoomTranscript | RoomTurn]:
        """The room's finals and turns shared since ``since`` (epoch seconds) still in its
        log, in the order shared."""
        entries: Any = await self._redis.xrange(keys.room_log(self.room), min=int(since * 1000))
        finals = []
        for _, fields in entries:
            try:
                event = decode_event(fields[b"e"])
            except SchemaError:
                continue  # written by an incompatible version
            if isinstance(event, RoomTranscript | RoomTurn):
                finals.append(event)
        return finals

    async def leave(self, *, announce: bool = True) -> None:
        """``announce``: False when the session lives on in another connection."""
        if announce:
            await self._redis.hdel(keys.room_members(self.room), self.me.session_id)
            self._writer.publish(self._channel, RoomPresence(False, self.me).encode())
        await self._relay.unsubscribe(self._channel, self._subscriber)
