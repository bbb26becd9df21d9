"""Rooms through the real pipeline: everyone in a room sees everyone's words, no one else does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.redis_server import RedisServer, free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up
from tests.e2e.room_clients import Listener

pytestmark = pytest.mark.e2e

BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
ANA = BY_ID["jfk-inaugural-1961"]
BEN = BY_ID["ls-test-clean-1089-134686-0000"]
DAN = BY_ID["ls-test-clean-1995-1837-0001"]


def room_views(messages: Sequence[Mapping[str, Any]]) -> list[set[str]]:
    """The room's participants by name, as a client knows them after each presence message."""
    present: dict[str, str] = {}
    views = []
    for m in messages:
        if m["type"] == "room.participants":
            present = {p["session_id"]: p["name"] for p in m["participants"]}
        elif m["type"] == "room.join":
            present[m["session_id"]] = m["name"]
        elif m["type"] == "room.leave":
            present.pop(m["session_id"], None)
        else:
            continue
        views.append(set(present.values()))
    return views


def finals_by_speaker(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    texts: dict[str, list[str]] = {}
    for m in messages:
        if m["type"] == "transcript" and m["is_final"]:
            texts.setdefault(m["speaker"], []).append(m["text"])
    return {speaker: " ".join(parts) for speaker, parts in texts.items()}


def test_room_participants_see_each_other_and_other_rooms_see_nothing(
    pipeline: RunningPipeline,
) -> None:
    async def scenario() -> tuple[list[StreamRun], list[dict[str, Any]]]:
        def speak(entry: Any, room: str, name: str) -> Any:
            # everyone stays until 6 s after the longest recording ends, so that each hears all
            # the others' finals (one leaving the room hears no more), even on a loaded machine
            tail = 6.0 + (longest - entry.seconds) / 2
            return stream_audio(
                pipeline.url,
                read_audio(entry.audio),
                speed=2,
                tail_silence_s=tail,
                params={"room": room, "name": name},
            )

        longest = max(ANA.seconds, BEN.seconds, DAN.seconds)
        # rooms of their own: the session-wide pipeline's rooms keep their history, which a
        # newcomer is sent (another test's "Ben" would be heard here too)
        async with Listener(pipeline.url + "?room=rooms-42&name=Cy&listen=true") as cy:
            runs = await asyncio.gather(
                speak(ANA, "rooms-42", "Ana"),
                speak(BEN, "rooms-42", "Ben"),
                speak(DAN, "rooms-43", "Dan"),
            )
            spoken = {f.message.utterance_id for run in runs[:2] for f in run.finals}

            def heard_all(heard: list[dict[str, Any]]) -> bool:
                finals = {m.get("utterance_id") for m in heard if m["type"] == "final"}
                left = {m["name"] for m in heard if m["type"] == "room.leave"}
                return finals >= spoken and left >= {"Ana", "Ben"}

            await cy.wait_for(heard_all)
        return list(runs), cy.messages

    (ana, ben, dan), cy = asyncio.run(scenario())
    for run, own, other, name in ((ana, ANA, BEN, "Ben"), (ben, BEN, ANA, "Ana")):
        heard = finals_by_speaker([r.message for r in run.received])
        assert corpus_wer([other.text], [heard.get(name, "")]) < 0.2, heard
        assert corpus_wer([own.text], [run.transcript]) < 0.2, (run.transcript, run.fast_transcript)
        assert "Dan" not in heard
        others = [r.message for r in run.received if r.message.get("speaker") == name]
        assert others and {m["session_id"] for m in others} != {
            run.received[0].message["session_id"]
        }
        assert run.close_code == 1000
    heard_by_cy = finals_by_speaker(cy)
    assert set(heard_by_cy) == {"Ana", "Ben"}
    assert corpus_wer([ANA.text], [heard_by_cy["Ana"]]) < 0.2
    dan_messages = [r.message for r in dan.received]
    assert set(finals_by_speaker(dan_messages)) == {"Dan"}
    assert not [m for m in dan_messages if m.get("name") in ("Ana", "Ben", "Cy")]
    # presence: Cy saw Ana and Ben join and leave, and a participant list naming them
    joined = {m["name"] for m in cy if m["type"] == "room.join"}
    left = {m["name"] for m in cy if m["type"] == "room.leave"}
    assert joined == left == {"Ana", "Ben"}
    # the whole list once, on joining; then only changes, from which the room is known
    lists = [m for m in cy if m["type"] == "room.participants"]
    assert len(lists) == 1 and {p["name"] for p in lists[0]["participants"]} == {"Cy"}
    assert {"Ana", "Ben", "Cy"} in room_views(cy)
    assert cy[-1]["type"] == "session.end"


def test_listener_cannot_send_audio(pipeline: RunningPipeline) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(pipeline.url + "?room=7&listen=true") as ws:
            messages = [json.loads(await ws.recv())]
            await ws.send(b"\x00" * 640)
            with contextlib.suppress(ConnectionClosed):
                async for text in ws:
                    messages.append(json.loads(text))
            return messages, ws.close_code

    messages, code = asyncio.run(scenario())
    assert messages[0]["type"] == "session.begin" and messages[0]["listen"] is True
    assert [m["code"] for m in messages if m["type"] == "error"] == ["listener_audio"]
    assert code == 1003


def test_a_room_spans_ingest_nodes(redis_server: RedisServer) -> None:
    """Ana on one ingest node, Ben on another, one Redis: each sees the other's words."""
    port_a, port_b = free_port(), free_port()
    env = {"REDIS_URL": redis_server.url}
    pipeline = start_up(port_a, transcribers=1, env=env)
    second = subprocess.Popen(
        [sys.executable, "-m", "streamscribe", "ingest"],
        env={
            **os.environ,
            **env,
            "STREAMSCRIBE_PORT": str(port_b),
            "STREAMSCRIBE_LOG_LEVEL": "WARNING",
        },
    )
    try:
        wait_healthy(port_b)
        longest = max(ANA.seconds, BEN.seconds)

        async def scenario() -> list[StreamRun]:
            return list(
                await asyncio.gather(
                    *(
                        stream_audio(
                            f"ws://127.0.0.1:{port}/v1/stream",
                            read_audio(entry.audio),
                            speed=2,
                            tail_silence_s=6.0 + (longest - entry.seconds) / 2,
                            params={"room": "span", "name": name, "partials": "false"},
                        )
                        for port, entry, name in ((port_a, ANA, "Ana"), (port_b, BEN, "Ben"))
                    )
                )
            )

        ana, ben = asyncio.run(scenario())
        assert (
            corpus_wer(
                [BEN.text], [finals_by_speaker([r.message for r in ana.received]).get("Ben", "")]
            )
            < 0.2
        )
        assert (
            corpus_wer(
                [ANA.text], [finals_by_speaker([r.message for r in ben.received]).get("Ana", "")]
            )
            < 0.2
        )
    finally:
        second.terminate()
        second.wait(timeout=30)
        stop_up(pipeline)


def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"ingest on port {port} did not become healthy")
