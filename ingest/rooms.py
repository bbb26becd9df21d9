"""A connection's membership of a room: presence, and sharing its transcripts with the room."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis.asyncio

from ingest.limits import CLOSE_OVERLOADED
from ingest.redis_io import EventHandler, EventRelay, RedisWriter
from shared import keys
from shared.errors import ProtocolError, SchemaError
from shared.schema import (
    Participant,
    RoomLogged,
    RoomPresence,
    RoomTranscript,
    RoomTurn,
    TranscriptResult,
    TranslationDone,
    decode_event,
)

MEMBERS_TTL_S = 24 * 3600
MEMBER_LAPSE_S = 30.0
"""A member whose connection stops renewing it (a node that died, a session lost before it
could leave) is dropped from the room this long after its last renewal."""


async def ensure_room_space(client: redis.asyncio.Redis, room: str, max_participants: int) -> None:
    """Refuses (1013, ``room_full``) a new participant of a room that has its maximum of live
    participants; checked before the session begins (approximate across nodes)."""
    if await client.zcount(keys.room_alive(room), time.time(), "+inf") >= max_participants:
        raise ProtocolError(
            "room_full",
            f"the room has its maximum of {max_participants} participants",
            CLOSE_OVERLOADED,
        )


def _logged(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[RoomLogged]:
    logged: list[RoomLogged] = []
    for _, fields in entries:
        try:
            event = decode_event(fields[b"e"])
        except SchemaError:
            continue  # written by an incompatible version
        if isinstance(event, RoomTranscript | RoomTurn | TranslationDone):
            logged.append(event)
    return logged


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
        members, alive = keys.room_members(self.room), keys.room_alive(self.room)
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(members, self.me.session_id, self.me.encode())
        pipe.zadd(alive, {self.me.session_id: now + MEMBER_LAPSE_S})
        pipe.expire(members, MEMBERS_TTL_S)
        pipe.expire(alive, MEMBERS_TTL_S)
        pipe.hgetall(members)
        pipe.zrangebyscore(alive, now, "+inf")
        *_, current, live = await pipe.execute()
        self._writer.publish(self._channel, RoomPresence(True, self.me).encode())
        living = {sid.decode() for sid in live}
        participants: list[Participant] = []
        ghosts: list[Participant] = []
        for sid, data in current.items():
            try:
                participant = Participant.decode(data)
            except SchemaError:
                continue  # a member written by an incompatible version: not shown
            (participants if sid.decode() in living else ghosts).append(participant)
        if ghosts:
            await self._drop_ghosts(ghosts, now)
        return sorted(participants, key=lambda p: (p.name, p.session_id))

    async def _drop_ghosts(self, ghosts: list[Participant], now: float) -> None:
        """Members whose connections stopped renewing them leave, and the room is told."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(keys.room_members(self.room), *(g.session_id for g in ghosts))
        pipe.zremrangebyscore(keys.room_alive(self.room), "-inf", now)
        await pipe.execute()
        for ghost in ghosts:
            self._writer.publish(self._channel, RoomPresence(False, ghost).encode())

    def renew(self, pipe: redis.asyncio.client.Pipeline, *, now: float) -> None:
        """Queues the renewal of this membership (the connection is alive)."""
        pipe.zadd(keys.room_alive(self.room), {self.me.session_id: now + MEMBER_LAPSE_S}, xx=True)

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

    def share_translation(self, done: TranslationDone) -> None:
        """A translation that no translator publishes (one no backend serves, with its
        error), for the room's readers of that language."""
        self._writer.publish(self._channel, done.encode(), log=keys.room_log(self.room))

    async def finals_since(self, since: float) -> list[RoomLogged]:
        """The room's finals, turns and translations shared since ``since`` (epoch seconds)
        still in its log, in the order shared."""
        entries: Any = await self._redis.xrange(keys.room_log(self.room), min=int(since * 1000))
        return _logged(entries)

    async def history(self, *, entries: int, since: float) -> list[RoomLogged]:
        """The room's last ``entries`` finals, turns and translations shared since ``since``
        (epoch seconds), in the order shared: what a participant joining is shown. A notice
        that a language has no translation counts for nothing and comes once per language,
        so notices, however many, never push what was said out of the history; the log is
        read back in pages, at most all of it (:data:`keys.ROOM_LOG_KEPT` entries)."""
        if entries <= 0:
            return []
        found: list[RoomLogged] = []
        said = 0
        told: set[str] = set()
        newest: bytes | str = "+"
        scanned = 0
        while said < entries and scanned < keys.ROOM_LOG_KEPT:
            page: Any = await self._redis.xrevrange(
                keys.room_log(self.room), max=newest, min=int(since * 1000), count=entries
            )
            if not page:
                break
            scanned += len(page)
            newest = b"(" + page[-1][0]
            for event in _logged(page):
                if isinstance(event, TranslationDone) and event.error_code:
                    if event.target_language not in told:
                        told.add(event.target_language)
                        found.append(event)
                    continue
                if said < entries:
                    found.append(event)
                    said += 1
        return found[::-1]

    async def leave(self, *, announce: bool = True) -> None:
        """``announce``: False when the session lives on in another connection."""
        if announce:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hdel(keys.room_members(self.room), self.me.session_id)
            pipe.zrem(keys.room_alive(self.room), self.me.session_id)
            await pipe.execute()
            self._writer.publish(self._channel, RoomPresence(False, self.me).encode())
        await self._relay.unsubscribe(self._channel, self._subscriber)
