"""The ingest node's Redis writer against a real Redis: its queue bounds, and what happens
when it is gone."""

from __future__ import annotations

import asyncio

import redis.asyncio

from ingest.redis_io import RedisWriter, WriterStopped
from shared import keys
from shared.schema import FinalizeRequested
from streamscribe.redis_server import RedisServer


async def _session(client: redis.asyncio.Redis, session_id: str, holder: str) -> None:
    await client.set(keys.attachment(session_id), holder)
    await client.xadd(keys.audio_stream(session_id), {"k": "v"})


def test_a_flooding_session_waits_for_the_writer_and_no_other_session_does(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        await client.flushdb()
        await _session(client, "flood", "f")
        await _session(client, "calm", "c")
        writer = RedisWriter(client, max_queued_per_session=4, max_queued_publishes=3)
        for _ in range(4):  # its quota, queued at once
            await asyncio.wait_for(writer.append("flood", FinalizeRequested(1.0), holder="f"), 1)
        fifth = asyncio.create_task(writer.append("flood", FinalizeRequested(2.0), holder="f"))
        await asyncio.sleep(0.05)
        assert not fifth.done()  # waits for the writer: backpressure on that session only
        await asyncio.wait_for(writer.append("calm", FinalizeRequested(3.0), holder="c"), 1)
        for n in range(5):  # the room events beyond the bound are dropped, never raised
            writer.publish("ss:room:r", f"event {n}".encode())
        assert writer.dropped_publishes == 2

        running = asyncio.create_task(writer.run())
        await asyncio.wait_for(fifth, 5)
        while await client.xlen(keys.audio_stream("flood")) < 6:
            await asyncio.sleep(0.01)
        assert await client.xlen(keys.audio_stream("calm")) == 2

        running.cancel()  # the writer is gone: appends fail at once instead of hanging
        await asyncio.gather(running, return_exceptions=True)
        try:
            await asyncio.wait_for(writer.append("calm", FinalizeRequested(4.0), holder="c"), 1)
        except WriterStopped:
            pass
        else:
            raise AssertionError("an append after the writer stopped was accepted")
        await client.aclose()

    asyncio.run(scenario())


def test_a_waiting_append_fails_when_the_writer_stops(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        writer = RedisWriter(client, max_queued_per_session=1)
        running = asyncio.create_task(writer.run())
        await asyncio.sleep(0)  # the writer waits for work
        await writer.append("s", FinalizeRequested(1.0), holder="h")  # the session's quota
        waiting = asyncio.create_task(writer.append("s", FinalizeRequested(2.0), holder="h"))
        running.cancel()  # before it wrote anything
        results = await asyncio.wait_for(asyncio.gather(waiting, return_exceptions=True), 1)
        assert isinstance(results[0], WriterStopped)
        await client.aclose()

    asyncio.run(scenario())
