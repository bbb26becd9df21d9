"""Limits through a real ingest node: 1013 when full, 4008 when idle or too long, 4029 when
audio comes too fast; a healthy session alongside is unaffected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up

pytestmark = pytest.mark.e2e

HEALTHY = next(  # 5.4 s: done before the 6 s session limit
    e for e in load_manifest(DATA / "manifest.jsonl") if e.id == "ls-test-clean-1089-134691-0001"
)


@pytest.fixture(scope="module")
def limited() -> Iterator[RunningPipeline]:
    running = start_up(
        free_port(),
        transcribers=1,
        env={
            "STREAMSCRIBE_MAX_SESSIONS": "3",
            "STREAMSCRIBE_IDLE_TIMEOUT_S": "2",
            "STREAMSCRIBE_MAX_SESSION_S": "6",
            "STREAMSCRIBE_MAX_AUDIO_RATE": "2",
            "STREAMSCRIBE_AUDIO_BURST_S": "3",
        },
    )
    yield running
    stop_up(running)


async def ending(ws: ClientConnection) -> tuple[int | None, list[dict[str, Any]]]:
    messages = []
    try:
        async for text in ws:
            messages.append(json.loads(text))
    except ConnectionClosed:
        pass
    return ws.close_code, [m for m in messages if m["type"] == "error"]


def test_each_limit_closes_with_its_code_and_spares_the_healthy(limited: RunningPipeline) -> None:
    url = limited.url

    async def scenario() -> dict[str, Any]:
        healthy = asyncio.create_task(stream_audio(url, read_audio(HEALTHY.audio), speed=1.0))
        await asyncio.sleep(0.5)
        results: dict[str, Any] = {}
        async with connect(url) as idle:  # says nothing at all
            await idle.recv()
            results["idle"] = await ending(idle)
        async with connect(url) as flood:  # 20 s of audio in one go
            await flood.recv()
            try:
                for _ in range(20):
                    await flood.send(bytes(32000))
            except ConnectionClosed:
                pass
            results["flood"] = await ending(flood)
        async with connect(url) as one, connect(url) as two:
            await one.recv()
            await two.recv()
            async with connect(url) as third:  # healthy + one + two: the node is full
                results["full"] = await ending(third)
        async with connect(url) as long:  # talks for longer than the session may last
            await long.recv()

            async def talk() -> None:
                try:
                    while True:
                        await long.send(bytes(3200))
                        await asyncio.sleep(0.1)
                except ConnectionClosed:
                    return

            talker = asyncio.create_task(talk())
            results["long"] = await ending(long)
            await talker
        results["healthy"] = await healthy
        return results

    results = asyncio.run(scenario())
    for case, code, words in [
        ("idle", 4008, "nothing received"),
        ("flood", 4029, "faster than 2x"),
        ("full", 1013, "try again later"),
        ("long", 4008, "maximum length"),
    ]:
        closed, errors = results[case]
        assert closed == code, (case, closed, errors)
        assert len(errors) == 1 and words in errors[0]["message"], (case, errors)
    healthy = results["healthy"]
    assert healthy.close_code == 1000
    assert corpus_wer([HEALTHY.text], [healthy.transcript]) < 0.15
