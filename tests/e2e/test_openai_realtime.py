"""OpenAI's Realtime transcription API on a running ``up``, driven by the ``openai`` SDK's
realtime connection pointed at it by ``base_url``: a session configured before its audio,
server VAD (items are turns) and client commits (what pipecat's and LiveKit's services send
when their own VAD ends a turn), and bad events answered while the session carries on."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import soxr
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from streamscribe.benchmarks.metrics import corpus_wer, normalize
from streamscribe.client import read_audio
from tests.conftest import DATA, RunningPipeline, is_ready, wait_until

pytestmark = pytest.mark.e2e

PAUSED = DATA / "vad-pause-3s-1988-24833-0000-0002.wav"
"""Speech, 3 s of silence from 3.32 s, speech: two turns."""
REFERENCE = (
    "THE TWO STRAY KITTENS GRADUALLY MAKE THEMSELVES AT HOME SHE DOESN'T PICK THEM UP BUT JUST "
    "HAVING THEM IN THE ROOM SURE DOESN'T GIVE HER ASTHMA"
)
CHUNK_S = 0.1
SPEED = 2.0
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


@pytest.fixture(autouse=True, scope="module")
def ready(pipeline: RunningPipeline) -> None:
    assert wait_until(lambda: is_ready(pipeline), timeout=180), "no transcriber became ready"


def pcm24(path: Any = PAUSED, tail_silence_s: float = 2.0) -> bytes:
    samples = np.frombuffer(read_audio(path).pcm, "<i2").astype(np.float32) / 32768
    at_24k = soxr.resample(samples, 16000, 24000)
    padded = np.concatenate([at_24k, np.zeros(int(tail_silence_s * 24000), np.float32)])
    return (np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes()


def session(turn_detection: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                "turn_detection": turn_detection,
            }
        },
    }


async def realtime(
    pipeline: RunningPipeline,
    config: dict[str, Any],
    *,
    commit_after_s: tuple[float, ...] = (),
    items: int = 2,
    also: Callable[[Any], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """Streams the recording at ``SPEED`` through the SDK; the events until ``items`` were
    completed (``commit_after_s``: audio times at which the client commits)."""
    client = AsyncOpenAI(base_url=pipeline.http + "/v1", api_key="unused", max_retries=0)
    events: list[dict[str, Any]] = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        events.append((await conn.recv()).to_dict())  # session.created
        await conn.session.update(session=config)  # type: ignore[arg-type]
        events.append((await conn.recv()).to_dict())
        if also is not None:
            await also(conn)

        async def send() -> None:
            audio = pcm24()
            step = int(CHUNK_S * 24000) * 2
            commits = list(commit_after_s)
            for offset in range(0, len(audio), step):
                chunk = base64.b64encode(audio[offset : offset + step]).decode()
                await conn.input_audio_buffer.append(audio=chunk)
                if commits and offset / 48000 >= commits[0]:
                    commits.pop(0)
                    await conn.input_audio_buffer.commit()
                await asyncio.sleep(CHUNK_S / SPEED)

        async def receive() -> None:
            while sum(e["type"] == COMPLETED for e in events) < items:
                events.append((await conn.recv()).to_dict())

        sender = asyncio.create_task(send())
        await asyncio.wait_for(receive(), timeout=120)
        await sender
    return events


def by_item(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    items: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if "item_id" in e:
            items.setdefault(e["item_id"], []).append(e)
    return items


def test_server_vad_items_are_turns_with_deltas_then_the_settled_text(
    pipeline: RunningPipeline,
) -> None:
    events = asyncio.run(realtime(pipeline, session({"type": "server_vad"})))
    assert events[0]["type"] == "session.created" and events[1]["type"] == "session.updated"
    assert events[1]["session"]["audio"]["input"]["transcription"]["language"] == "en"
    assert not [e for e in events if e["type"] == "error"]
    items = by_item(events)
    assert len(items) == 2
    previous = None
    for item_id, seen in items.items():
        kinds = [e["type"] for e in seen]
        assert kinds[0] == "input_audio_buffer.speech_started", kinds
        assert kinds[-3:] == [
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            COMPLETED,
        ]
        assert DELTA in kinds
        committed = next(e for e in seen if e["type"] == "input_audio_buffer.committed")
        assert committed.get("previous_item_id") == previous
        previous = item_id
        started, stopped = seen[0], next(e for e in seen if e["type"].endswith("speech_stopped"))
        assert started["audio_start_ms"] < stopped["audio_end_ms"]
    first, second = (seen for seen in items.values())
    assert next(e for e in first if e["type"].endswith("speech_stopped"))["audio_end_ms"] <= 3700
    assert second[0]["audio_start_ms"] >= 6000  # the pause is 3.32-6.32 s
    completed = [e["transcript"] for e in events if e["type"] == COMPLETED]
    deltas = ["".join(e["delta"] for e in seen if e["type"] == DELTA) for seen in items.values()]
    assert corpus_wer([REFERENCE], [" ".join(completed)]) < 0.15
    assert corpus_wer([REFERENCE], [" ".join(deltas)]) < 0.2
    assert "kittens" in normalize(completed[0]) and "asthma" in normalize(completed[1])


def test_client_commits_without_vad(pipeline: RunningPipeline) -> None:
    events = asyncio.run(realtime(pipeline, session(None), commit_after_s=(3.6, 9.5)))
    kinds = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" not in kinds and "error" not in kinds
    committed = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    completed = [e for e in events if e["type"] == COMPLETED]
    assert len(committed) >= 2 and len(completed) == 2
    assert [c["item_id"] for c in committed[:2]] == [c["item_id"] for c in completed]
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]
    assert corpus_wer([REFERENCE], [" ".join(c["transcript"] for c in completed)]) < 0.15


def test_bad_events_get_error_events_and_the_session_carries_on(
    pipeline: RunningPipeline,
) -> None:
    async def mistakes(conn: Any) -> None:
        await conn.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
        await conn.send({"type": "response.create"})
        await conn.send({"type": "session.update", "session": {"type": "realtime"}})
        await conn.send({"type": "input_audio_buffer.commit"})  # nothing appended yet

    events = asyncio.run(realtime(pipeline, session({"type": "server_vad"}), also=mistakes))
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == [
        "invalid_value", "unsupported_event", "invalid_value", "input_audio_buffer_commit_empty"
    ]  # fmt: skip
    assert [e["param"] for e in errors[:3]] == ["audio", "type", "session.type"]
    completed = [e["transcript"] for e in events if e["type"] == COMPLETED]
    assert corpus_wer([REFERENCE], [" ".join(completed)]) < 0.15


def test_the_handshake_refuses_what_is_not_a_transcription_session(
    pipeline: RunningPipeline,
) -> None:
    async def status(query: str) -> tuple[int, dict[str, Any]]:
        url = pipeline.url.replace("/v1/stream", "/v1/realtime") + query
        try:
            async with connect(url):
                return 101, {}
        except InvalidStatus as refused:
            return refused.response.status_code, json.loads(refused.response.body)

    code, body = asyncio.run(status("?model=gpt-realtime"))
    assert code == 400 and "intent" in body["error"]["message"]
    code, body = asyncio.run(status("?intent=transcription&voice=alloy"))
    assert code == 400 and "voice" in body["error"]["message"]
