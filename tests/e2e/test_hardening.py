"""Attacks on a real ``up`` that used to take a node down: floods of control messages and a
client that stops reading. The node keeps serving a healthy session throughout, no other
session is touched, and the attackers get the documented close codes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared import keys
from shared.schema import Participant, RoomTranscript, TranscriptResult
from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up

pytestmark = pytest.mark.e2e

HEALTHY = next(
    e for e in load_manifest(DATA / "manifest.jsonl") if e.id == "ls-test-clean-1089-134686-0000"
)
LONG = next(  # 50 s: streaming at real time, it outlasts a 30 s wait
    e for e in load_manifest(DATA / "manifest.jsonl") if e.id == "long-ljspeech-LJ001-0001-0008"
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
        for _ in range(1500):  # the speaker's finals reach the room just after the speaker
            shared = [m for m in heard if m["type"] == "transcript" and m["is_final"]]
            if len([m for m in shared if m["session_id"] == run.session_id]) >= len(run.finals):
                break
            await asyncio.sleep(0.02)
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
    assert [m["text"] for m in room_finals] == [f.message.text for f in run.finals]
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


async def answer_to(url: str, frame: str | bytes) -> tuple[int | None, list[str]]:
    """Sends ``frame`` once the session began; the close code and the error codes."""
    errors: list[str] = []
    async with connect(url) as ws:
        await ws.recv()
        await ws.send(frame)
        try:
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "error":
                    errors.append(message["code"])
        except ConnectionClosed:
            pass
    return ws.close_code, errors


F32 = "?encoding=pcm_f32le"
HOSTILE_FRAMES = [
    ("NaN samples", F32, np.full(1600, np.nan, np.float32).tobytes(), 1007, "invalid_audio"),
    ("infinite samples", F32, np.full(1600, np.inf, np.float32).tobytes(), 1007, "invalid_audio"),
    ("deep JSON", "", "[" * 990 + "]" * 990, 1003, "invalid_message"),
    (
        "a 4400-digit integer",
        "",
        '{"type": "finalize", "n": ' + "9" * 4400 + "}",
        1003,
        "invalid_message",
    ),
]


@pytest.mark.parametrize("case", HOSTILE_FRAMES, ids=[case[0] for case in HOSTILE_FRAMES])
def test_hostile_frames_get_their_documented_error_and_close(
    pipeline: RunningPipeline, case: tuple[str, str, str | bytes, int, str]
) -> None:
    _, query, frame, code, error = case
    assert asyncio.run(answer_to(pipeline.url + query, frame)) == (code, [error])


def test_huge_f32_samples_at_48k_stream_as_full_scale(pipeline: RunningPipeline) -> None:
    async def scenario() -> tuple[int | None, list[str]]:
        huge = np.tile(np.array([3.4e38, -3.4e38], np.float32), 4800).tobytes()
        async with connect(pipeline.url + "?encoding=pcm_f32le&sample_rate=48000") as ws:
            await ws.recv()
            for _ in range(5):
                await ws.send(huge)
            await ws.send('{"type": "close"}')
            errors = [
                m["code"] for t in [m async for m in ws] if (m := json.loads(t))["type"] == "error"
            ]
        return ws.close_code, errors

    assert asyncio.run(scenario()) == (1000, [])


OTHER_DIGITS = ["\u00b2", "\u2460", "\uff11\uff16\uff10\uff10\uff10"]
"""Superscript two, circled one, full-width 16000: ``str.isdigit`` takes them all."""


@pytest.mark.parametrize("raw", OTHER_DIGITS)
def test_sample_rates_in_other_digits_are_4400(pipeline: RunningPipeline, raw: str) -> None:
    async def scenario() -> tuple[int | None, list[str]]:
        messages = []
        async with connect(f"{pipeline.url}?sample_rate={quote(raw)}") as ws:
            try:
                async for text in ws:
                    messages.append(json.loads(text))
            except ConnectionClosed:
                pass
        return ws.close_code, [m["message"] for m in messages if m["type"] == "error"]

    code, errors = asyncio.run(scenario())
    assert code == 4400 and len(errors) == 1 and errors[0].startswith("sample_rate"), errors


def http_status(url: str, method: str = "GET", **headers: str) -> int:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_methods_other_than_get_and_head_are_405(pipeline: RunningPipeline) -> None:
    for method in ("POST", "PUT", "DELETE", "TRACE"):
        assert http_status(pipeline.http + "/healthz", method) == 405, method
    assert http_status(pipeline.http + "/healthz", "HEAD") == 200


def test_a_rebinding_host_is_refused_with_its_own_origin(pipeline: RunningPipeline) -> None:
    """A page on evil.example:PORT, its name rebound to 127.0.0.1: Origin and Host agree."""
    port = urlsplit(pipeline.http).port
    evil = f"evil.example:{port}"
    assert http_status(pipeline.http + "/", Host=evil) == 421

    async def stream() -> int:
        try:
            async with connect(
                f"ws://{evil}/v1/stream",
                origin=f"http://{evil}",  # type: ignore[arg-type]
                host="127.0.0.1",  # what the rebound name resolves to
                port=port,
            ):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(stream()) == 421
    assert http_status(pipeline.http + "/healthz") == 200


def test_repeated_host_or_origin_headers_are_400(pipeline: RunningPipeline) -> None:
    port = urlsplit(pipeline.http).port
    for extra in ("Host: 127.0.0.1\r\n", "Origin: http://a\r\nOrigin: http://b\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
            status_line = raw.recv(200).split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 400"), (extra, status_line)


def masked_text_frame(text: str) -> bytes:
    """A client's WebSocket text frame (clients must mask), under 126 bytes."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def busy_room_log(redis_url: str, room: str, entries: int, chars: int) -> None:
    """A room whose log holds ``entries`` finals of ``chars`` characters (a long meeting)."""
    speaker = Participant("speaker-of-the-past", "Pat", listener=False)
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    for n in range(entries):
        result = TranscriptResult(
            "speaker-of-the-past", n, 0, "word " * (chars // 5), n, n + 1, "en", 1.0
        )
        pipe.xadd(keys.room_log(room), {"e": RoomTranscript(speaker, True, result).encode()})
    pipe.execute()
    client.close()


def test_a_stalled_reader_at_its_close_is_dropped_alone(pipeline: RunningPipeline) -> None:
    """A listener that stops reading with megabytes queued behind it, then sends close: it is
    dropped once its last messages go unread for 30 s; no other session is touched (the node
    used to take the stuck send for a Redis failure and end every session on it)."""
    busy_room_log(pipeline.redis_url, "stalled", entries=600, chars=5000)  # 3 MB to replay
    port = urlsplit(pipeline.http).port
    assert port is not None

    async def stalled_resume() -> str:
        async with connect(pipeline.url + "?room=stalled&listen=true&name=Stu") as ws:
            begin = json.loads(await ws.recv())
            ws.transport.abort()  # gone without close: the session waits for a resume
        return f"resume={begin['resume_token']}&last_seq={begin['seq']}"

    resume = asyncio.run(stalled_resume())

    def stall() -> bool:
        """Resumes (the room's log is replayed to it), never reads, sends close; whether the
        server then let go of the connection."""
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        raw.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            f"GET /v1/stream?room=stalled&listen=true&{resume} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        time.sleep(5)  # the replay fills every buffer between us
        raw.sendall(masked_text_frame('{"type": "close"}'))
        time.sleep(40)  # still not reading, past the server's 30 s for the last messages
        raw.settimeout(120)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            while raw.recv(1 << 16):  # read now: until the server closes
                pass
            let_go = True
        except ConnectionResetError:
            let_go = True
        except TimeoutError:
            let_go = False
        raw.close()
        return let_go

    async def scenario() -> tuple[StreamRun, bool]:
        stalled = asyncio.create_task(asyncio.to_thread(stall))
        healthy = await stream_audio(pipeline.url, read_audio(LONG.audio), speed=1.0)
        return healthy, await stalled

    healthy, let_go = asyncio.run(scenario())
    assert let_go, "the stalled connection was never closed"
    assert healthy.close_code == 1000 and not healthy.errors, (healthy.close_code, healthy.errors)
    assert corpus_wer([LONG.text], [healthy.transcript]) < 0.2
    assert http_status(pipeline.http + "/readyz") == 200
