"""Room presence at scale through a real ``up``: a join or leave costs each member one small
message, ghosts of lost sessions leave the room, a session is never lost to the race between
its creation and its first renewal, and a full room refuses newcomers with 1013."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared import keys
from shared.schema import Participant
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up, wait_until

pytestmark = pytest.mark.e2e

LISTENERS = 250


class Member:
    """A listener that reads everything it is sent."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.bytes = 0
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                self.bytes += len(text)
                self.messages.append(json.loads(text))
        except ConnectionClosed:
            pass

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


async def join(url: str, room: str, name: str) -> Member:
    """Returns once the member has the room's participant list (it has joined)."""
    ws = await connect(f"{url}?room={room}&listen=true&name={name}", max_queue=None)
    member = Member(ws)
    while not member.of_type("room.participants") and not member.reader.done():
        await asyncio.sleep(0.02)
    return member


async def leave(member: Member) -> None:
    await member.ws.send('{"type": "close"}')
    await asyncio.wait_for(member.reader, 60)


def test_a_room_of_250_listeners_costs_each_one_message_per_join(
    pipeline: RunningPipeline,
) -> None:
    async def scenario() -> list[Member]:
        members = []
        for start in range(0, LISTENERS, 25):  # in waves, as people arrive
            members += await asyncio.gather(
                *(join(pipeline.url, "crowd", f"L{n}") for n in range(start, start + 25))
            )
        audio = read_audio(DATA / "ls-test-clean-1089-134691-0000.wav")
        run = await stream_audio(
            pipeline.url, audio, speed=4.0, params={"room": "crowd", "name": "Sam"}
        )
        assert run.close_code == 1000 and run.finals
        spoken = {f.message.utterance_id for f in run.finals}

        def heard_sam(member: Member) -> bool:
            finals = member.of_type("transcript")
            return {m["utterance_id"] for m in finals if m["is_final"]} >= spoken

        async with asyncio.timeout(60):  # every listener has each of Sam's finals
            while not all(heard_sam(m) for m in members):
                await asyncio.sleep(0.05)
        await asyncio.gather(*(leave(m) for m in members))
        return members

    client = redis.Redis.from_url(pipeline.redis_url)
    before = memory(pipeline, client)
    members = asyncio.run(scenario())
    codes = [m.ws.close_code for m in members]
    assert codes == [1000] * LISTENERS, {c: codes.count(c) for c in set(codes)}
    try:
        # each connection lets go of the room as it closes, just after its client saw the close
        assert wait_until(lambda: not client.exists(keys.room_members("crowd")))
        assert client.zcard(keys.room_alive("crowd")) == 0
        # the sessions' resume keys last the resume window (60 s); then they are all gone
        # (the room's log of Sam's finals stays its 24 h)
        ids = [m.of_type("session.begin")[0]["session_id"] for m in members]

        def left_behind() -> list[bytes]:
            return [k for sid in ids for k in client.scan_iter(match=f"ss:{{{sid}}}:*")]

        assert wait_until(lambda: not left_behind(), 120), left_behind()[:5]
        after = memory(pipeline, client)
    finally:
        client.close()
    sent = sum(m.bytes for m in members)
    count = sum(len(m.messages) for m in members)
    print(f"room of {LISTENERS}: {count} messages, {sent / 2**20:.2f} MiB; {before} -> {after}")
    for n, member in enumerate(members):
        assert member.ws.close_code == 1000, (n, member.ws.close_code)
        assert len(member.of_type("room.participants")) == 1  # the whole list once
        # then one delta per later arrival (of its wave or after, and Sam)
        assert len(member.of_type("room.join")) <= LISTENERS - 25 * (n // 25) + 1, n
        assert any(m["is_final"] for m in member.of_type("transcript")), n
    first = members[0]  # saw everyone arrive: a few hundred bytes each, not a list each
    assert first.bytes < 400 * (2 * LISTENERS + 20), first.bytes


def memory(pipeline: RunningPipeline, client: redis.Redis) -> dict[str, float]:
    info: Any = client.info("memory")
    ingest = next(c for c in psutil.Process(pipeline.pid).children() if c.cmdline()[-1] == "ingest")
    return {
        "keys": client.dbsize(),
        "redis_mib": round(info["used_memory"] / 2**20, 2),
        "ingest_rss_mib": round(ingest.memory_info().rss / 2**20, 1),
    }


def test_ghosts_of_lost_sessions_leave_the_room(pipeline: RunningPipeline) -> None:
    """A member whose node died never said goodbye: once its membership lapses, the next
    join drops it and the room is told."""
    client = redis.Redis.from_url(pipeline.redis_url)
    ghost = Participant("ghost-session", "Casper", listener=True)
    client.hset(keys.room_members("haunted"), ghost.session_id, ghost.encode())
    client.zadd(keys.room_alive("haunted"), {ghost.session_id: time.time() + 3600})

    async def scenario() -> tuple[Member, Member]:
        ada = await join(pipeline.url, "haunted", "Ada")  # while Casper still seems alive
        # nobody renewed Casper: its membership lapsed (set so, not waited for)
        client.zadd(keys.room_alive("haunted"), {ghost.session_id: time.time() - 1})
        bo = await join(pipeline.url, "haunted", "Bo")
        for _ in range(500):  # Ada hears Bo arrive
            if any(m["name"] == "Bo" for m in ada.of_type("room.join")):
                break
            await asyncio.sleep(0.02)
        await leave(bo)
        for _ in range(500):  # Bo's node tells the room as Bo's connection ends
            if any(m["name"] == "Bo" for m in ada.of_type("room.leave")):
                break
            await asyncio.sleep(0.02)
        await leave(ada)
        return ada, bo

    try:
        ada, bo = asyncio.run(scenario())
        names = {p["name"] for p in ada.of_type("room.participants")[0]["participants"]}
        assert names == {"Ada", "Casper"}
        assert [m["name"] for m in ada.of_type("room.leave")] == ["Casper", "Bo"]
        names = {p["name"] for p in bo.of_type("room.participants")[0]["participants"]}
        assert names == {"Ada", "Bo"}
        assert client.hget(keys.room_members("haunted"), ghost.session_id) is None
        assert wait_until(lambda: not client.exists(keys.room_members("haunted")))
    finally:
        client.close()


def test_sessions_opened_while_redis_stalls_are_not_lost(pipeline: RunningPipeline) -> None:
    """Redis pauses writes past a renewal: sessions created meanwhile all begin and end well
    (they used to be renewed before their record existed, and closed 1011)."""
    client = redis.Redis.from_url(pipeline.redis_url)

    async def one(n: int) -> tuple[int | None, list[str]]:
        async with connect(f"{pipeline.url}?room=stall&listen=true&name=S{n}") as ws:
            begin = json.loads(await ws.recv())
            assert begin["type"] == "session.begin"
            await asyncio.sleep(3.0)  # past a renewal or two
            await ws.send('{"type": "close"}')
            errors = []
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "error":
                    errors.append(message["code"])
        return ws.close_code, errors

    async def scenario() -> list[tuple[int | None, list[str]]]:
        async with connect(f"{pipeline.url}?room=stall&listen=true&name=keeper") as keeper:
            await keeper.recv()  # a live session keeps the renewer busy
            client.execute_command("CLIENT", "PAUSE", "2500", "WRITE")  # type: ignore[no-untyped-call]
            results = await asyncio.gather(*(one(n) for n in range(20)))
            await keeper.send('{"type": "close"}')
        return list(results)

    try:
        assert asyncio.run(scenario()) == [(1000, [])] * 20
    finally:
        client.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        client.close()


@pytest.fixture(scope="module")
def small_rooms() -> Iterator[RunningPipeline]:
    running = start_up(free_port(), transcribers=1, env={"STREAMSCRIBE_MAX_ROOM_PARTICIPANTS": "3"})
    yield running
    stop_up(running)


def test_a_full_room_refuses_a_newcomer_with_1013(small_rooms: RunningPipeline) -> None:
    async def scenario() -> tuple[int | None, list[str], int | None]:
        members = [await join(small_rooms.url, "small", f"M{n}") for n in range(3)]
        refused: list[str] = []
        async with connect(f"{small_rooms.url}?room=small&listen=true") as fourth:
            try:
                async for text in fourth:
                    refused.append(json.loads(text)["code"])
            except ConnectionClosed:
                pass
        code = fourth.close_code
        await leave(members[0])
        async with connect(f"{small_rooms.url}?room=small&listen=true") as later:
            assert json.loads(await later.recv())["type"] == "session.begin"
            await later.send('{"type": "close"}')
            async for _ in later:
                pass
        for member in members[1:]:
            await leave(member)
        return code, refused, later.close_code

    assert asyncio.run(scenario()) == (1013, ["room_full"], 1000)
