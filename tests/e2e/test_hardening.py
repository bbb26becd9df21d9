"""Attacks on a real ``up`` that used to take a node down: floods of control messages and a
client that stops reading. The node keeps serving a healthy session throughout, no other
session is touched, and the attackers get the documented close codes."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.metrics import corpus_wer, load_manifest
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up

pytestmark = pytest.mark.e2e

HEALTHY = next(
    e for e in load_manifest(DATA / "manifest.jsonl") if e.id == "ls-test-clean-1089-134686-0000"
)
FLOOD_FRAMES = 40000
FINALIZE = '{"type": "finalize"}'


async def flood(url: str) -> tuple[int | None, list[str]]:
    """Sends FLOOD_FRAMES finalize frames as fast as it can; its close code and errors."""
    errors: list[str] = []
    async with connect(url, max_queue=None) as ws:
        await ws.recv()

        async def read() -> None:
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "error":
                    errors.append(message["code"])

        reader = asyncio.create_task(read())
        try:
            for _ in range(FLOOD_FRAMES):
                await ws.send(FINALIZE)
            await ws.send('{"type": "close"}')
        except ConnectionClosed:
            pass
        await asyncio.wait({reader}, timeout=60)
        reader.cancel()
        return ws.close_code, errors


async def healthy_in_a_room(url: str, room: str) -> tuple[StreamRun, list[dict[str, Any]]]:
    """A speaker and a listener in ``room``: what the speaker got, what the listener heard."""
    heard: list[dict[str, Any]] = []
    async with connect(f"{url}?room={room}&listen=true&name=Lu") as listener:
        await listener.recv()

        async def listen(ws: ClientConnection) -> None:
            async for text in ws:
                heard.append(json.loads(text))

        reading = asyncio.create_task(listen(listener))
        run = await stream_audio(
            url, read_audio(HEALTHY.audio), speed=1.0, params={"room": room, "name": "Hal"}
        )
        await asyncio.sleep(2.0)  # the last room messages on their way
        await listener.send('{"type": "close"}')
        await asyncio.wait_for(reading, 30)
    return run, heard


def assert_healthy(run: StreamRun, heard: list[dict[str, Any]], http: str) -> None:
    assert run.close_code == 1000, (run.close_code, run.errors)
    assert corpus_wer([HEALTHY.text], [run.transcript]) < 0.3, run.transcript
    room_finals = [
        m
        for m in heard
        if m["type"] == "transcript" and m["is_final"] and m["session_id"] == run.session_id
    ]
    assert [m["text"] for m in room_finals] == [f.message["text"] for f in run.finals]
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(http + path, timeout=10) as answer:
            assert answer.status == 200


async def attack(url: str, room: str) -> tuple[list[tuple[int | None, list[str]]], Any]:
    healthy = asyncio.create_task(healthy_in_a_room(url, room))
    await asyncio.sleep(1.0)
    floods = await asyncio.gather(*(flood(url + f"?room={room}") for _ in range(3)))
    return list(floods), await healthy


def test_a_finalize_flood_is_closed_4029_and_the_room_streams_on(
    pipeline: RunningPipeline,
) -> None:
    floods, (run, heard) = asyncio.run(attack(pipeline.url, "flood"))
    for code, errors in floods:
        assert (code, errors) == (4029, ["too_fast"])
    assert_healthy(run, heard, pipeline.http)


@pytest.fixture(scope="module")
def unlimited() -> Iterator[RunningPipeline]:
    """A node whose operator lifted the message rate limit: its Redis writer's bounds are
    all that stands between a flood and the other sessions."""
    running = start_up(
        free_port(),
        transcribers=1,
        env={"STREAMSCRIBE_MAX_MESSAGES_PER_S": "1000000", "STREAMSCRIBE_MESSAGE_BURST": "1000000"},
    )
    yield running
    stop_up(running)


def test_without_a_rate_limit_a_flood_slows_only_its_own_sessions(
    unlimited: RunningPipeline,
) -> None:
    floods, (run, heard) = asyncio.run(attack(unlimited.url, "flood"))
    for code, errors in floods:
        assert (code, errors) == (1000, [])  # every frame taken, in its own time
    assert_healthy(run, heard, unlimited.http)
    assert unlimited.process.poll() is None
