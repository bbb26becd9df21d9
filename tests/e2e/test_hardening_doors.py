"""Attacks on the doors added last: uploads that would exhaust a node, empty audio frames,
slow requests, languages nobody translates, notices crowding out a room's history. Each
drives a real ``up``; the node keeps serving its healthy clients throughout."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import numpy as np
import openai
import psutil
import pytest
import redis
from openai import OpenAI
from websockets.asyncio.client import connect

from shared import keys
from shared.schema import (
    Participant,
    RoomTranscript,
    RoomTurn,
    TranscriptResult,
    TranslationDone,
)
from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, is_ready, start_up, stop_up, wait_until

pytestmark = pytest.mark.e2e

BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
JFK = BY_ID["jfk-inaugural-1961"]  # 11 s
HEALTHY = BY_ID["ls-test-clean-1089-134686-0000"]
ATTACKER = "127.0.0.2"
"""Attacks come from another loopback address, so the per-address caps fall on them."""


@pytest.fixture(scope="module")
def node() -> Iterator[RunningPipeline]:
    running = start_up(
        free_port(),
        env={
            "STREAMSCRIBE_UPLOAD_MAX_DURATION_S": str(5 * 3600),
            "STREAMSCRIBE_UPLOAD_MAX_CONCURRENT": "24",
            "STREAMSCRIBE_UPLOAD_MAX_CONCURRENT_PER_CLIENT": "20",
            "STREAMSCRIBE_MAX_CONNECTIONS_PER_ADDRESS": "200",
        },
    )
    assert wait_until(lambda: is_ready(running), timeout=180)
    yield running
    stop_up(running)


def ingest_process(pipeline: RunningPipeline) -> psutil.Process:
    for child in psutil.Process(pipeline.pid).children(recursive=True):
        if "ingest" in child.cmdline():
            return child
    raise AssertionError("no ingest process under up")


def silent_flac(seconds: int) -> bytes:
    """``seconds`` of digital silence as 16 kHz FLAC: hours of audio in a few MB."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="flac") as file:
        stream = file.add_stream("flac", rate=16000, layout="mono")  # type: ignore[call-overload]
        block = np.zeros((1, 16000 * 60), np.int16)
        for minute in range(seconds // 60):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate = 16000
            frame.pts = minute * 16000 * 60
            for packet in stream.encode(frame):
                file.mux(packet)
        for packet in stream.encode(None):
            file.mux(packet)
    return out.getvalue()


def client(pipeline: RunningPipeline) -> OpenAI:
    return OpenAI(base_url=pipeline.http + "/v1", api_key="unused", max_retries=0, timeout=600)


def test_hours_of_audio_in_a_few_mb_never_fill_ingest(node: RunningPipeline) -> None:
    flac = silent_flac(4 * 3600)
    assert len(flac) < 8 * 2**20
    ingest = ingest_process(node)
    client(node).audio.transcriptions.create(  # warm: the decoder's libraries loaded once
        model="whisper-1", file=("jfk.wav", Path(JFK.audio).read_bytes())
    )
    baseline = ingest.memory_info().rss
    peak = baseline
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(
            client(node).audio.transcriptions.create,
            model="whisper-1",
            file=("four-hours.flac", flac),
            response_format="verbose_json",
        )
        while not upload.done():
            peak = max(peak, ingest.memory_info().rss)
            time.sleep(0.05)
        answer = upload.result()
    time.sleep(1.0)
    after = ingest.memory_info().rss
    mib = [round(x / 2**20) for x in (baseline, peak, after)]
    print(f"ingest RSS MiB: baseline {mib[0]}, peak {mib[1]}, after {mib[2]}")
    assert answer.duration == pytest.approx(4 * 3600, abs=1) and answer.text == ""
    assert peak < baseline + 100 * 2**20  # decoded whole, it was 900 MiB more
    assert after < baseline * 1.1


def test_a_recording_over_the_default_limit_is_refused_at_its_header(
    pipeline: RunningPipeline,
) -> None:
    assert wait_until(lambda: is_ready(pipeline), timeout=180)
    with pytest.raises(openai.BadRequestError) as refused:
        client(pipeline).audio.transcriptions.create(
            model="whisper-1", file=("an-hour.flac", silent_flac(3600))
        )
    assert refused.value.code == "invalid_value"
    assert "longer than 1500 seconds" in refused.value.message


def test_twenty_concurrent_uploads_all_succeed(node: RunningPipeline) -> None:
    """Each waits for its windows longer than redis-py 8.2's 5 s socket timeout."""
    audio = Path(JFK.audio).read_bytes()

    def one(_: int) -> str:
        return client(node).audio.transcriptions.create(
            model="whisper-1", file=("jfk.wav", audio), response_format="text"
        )

    with ThreadPoolExecutor(20) as pool:
        texts = list(pool.map(one, range(20)))
    assert all(corpus_wer([JFK.text], [str(t)]) < 0.15 for t in texts), texts


def test_a_client_that_hangs_up_leaves_the_rest_of_its_upload_undone(
    node: RunningPipeline,
) -> None:
    long = read_audio(BY_ID["long-ljspeech-LJ001-0001-0008"].audio).pcm * 10  # 8.4 minutes
    wav = io.BytesIO()
    with av.open(wav, mode="w", format="wav") as file:
        stream = file.add_stream("pcm_s16le", rate=16000, layout="mono")  # type: ignore[call-overload]
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(long, np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            file.mux(packet)
    before = metric(node, 'streamscribe_ingest_uploads_total{outcome="client_gone"}')
    with contextlib.suppress(openai.APITimeoutError):
        OpenAI(
            base_url=node.http + "/v1", api_key="unused", max_retries=0, timeout=2.0
        ).audio.transcriptions.create(model="whisper-1", file=("long.wav", wav.getvalue()))
    assert wait_until(
        lambda: (
            metric(node, 'streamscribe_ingest_uploads_total{outcome="client_gone"}') == before + 1
        ),
        timeout=30,
    )


def metric(pipeline: RunningPipeline, name: str) -> float:
    with urllib.request.urlopen(pipeline.http + "/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize(
    "body",
    [
        b'--wrong\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--wrong--\r\n',
        b"\x00\xff garbage \xfe" * 100,
        b'--b\r\nContent-Disposition: form-data; name="'
        + b"n" * 100_000
        + b'"\r\n\r\nx\r\n--b--\r\n',
        b"--b\r\nX-Big: " + b"h" * 200_000 + b"\r\n\r\nx\r\n--b--\r\n",
    ],
    ids=["wrong-boundary", "garbage", "huge-field-name", "huge-part-header"],
)
def test_malformed_multipart_bodies_get_openais_400(pipeline: RunningPipeline, body: bytes) -> None:
    request = urllib.request.Request(
        pipeline.http + "/v1/audio/transcriptions",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    error = json.loads(refused.value.read())["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


async def empty_frame_flood(url: str) -> int | None:
    async with connect(url, max_queue=None) as ws:
        await ws.recv()
        with contextlib.suppress(Exception):
            for _ in range(100_000):
                await ws.send(b"")
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass
        return ws.close_code


def test_empty_audio_frames_are_closed_4029_and_others_stream_on(node: RunningPipeline) -> None:
    async def both() -> tuple[int | None, Any]:
        healthy = asyncio.create_task(stream_audio(node.url, read_audio(HEALTHY.audio), speed=1.0))
        await asyncio.sleep(1.0)
        code = await empty_frame_flood(node.url)
        return code, await healthy

    code, run = asyncio.run(both())
    assert code == 4029
    assert run.close_code == 1000 and corpus_wer([HEALTHY.text], [run.transcript]) < 0.3


def slow_connections(port: int, count: int, *, source: str = ATTACKER) -> list[socket.socket]:
    """``count`` uploads that send their request line and then headers a byte at a time."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: a\r\nX")
        except OSError:
            sock.close()
            continue
        held.append(sock)
    return held


def closed(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.01)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_slow_uploads_are_capped_and_dropped_while_health_answers(
    node: RunningPipeline,
) -> None:
    port = int(node.http.rsplit(":", 1)[1])
    held = slow_connections(port, 300)
    try:
        with urllib.request.urlopen(node.http + "/healthz", timeout=5) as answer:
            assert answer.status == 200  # from 127.0.0.1: its own cap is untouched
        assert wait_until(lambda: sum(closed(s) for s in held) >= 100, timeout=5)  # over 200
        assert wait_until(lambda: all(closed(s) for s in held), timeout=60)  # head deadline
    finally:
        for sock in held:
            sock.close()


def test_languages_nobody_translates_are_refused_at_the_handshake(
    pipeline: RunningPipeline,
) -> None:
    async def join(read: str) -> tuple[str, int | None]:
        """The first message's type (or error code) and how the session closed."""
        async with connect(f"{pipeline.url}?room=babel&listen=true&read={read}") as ws:
            first = json.loads(await ws.recv())
            with contextlib.suppress(Exception):
                await ws.send('{"type": "close"}')
                async for _ in ws:
                    pass
        return first.get("code") or first["type"], ws.close_code

    async def all_of_them() -> list[tuple[str, int | None]]:
        return await asyncio.gather(*(join(code) for code in ("zzq", "xx", "qqq", "fr")))

    refused = ("invalid_parameter", 4400)
    assert asyncio.run(all_of_them()) == [refused, refused, refused, ("session.begin", 1000)]


def test_notices_for_many_languages_leave_the_history_to_what_was_said(
    pipeline: RunningPipeline,
) -> None:
    """No translator runs: 60 readers of 60 languages make the speaker's turn tell each
    language once; a late joiner still gets the turn and its finals as history."""
    from shared.languages import WHISPER_LANGUAGES

    languages = [c for c in WHISPER_LANGUAGES if c != "en"][:60]
    room = f"history-{time.monotonic_ns()}"

    async def scenario() -> list[dict[str, Any]]:
        readers = [
            await connect(f"{pipeline.url}?room={room}&listen=true&read={code}&name=R{code}")
            for code in languages
        ]
        try:
            run = await stream_audio(
                pipeline.url, read_audio(JFK.audio), speed=4.0, params={"room": room, "name": "Jo"}
            )
            assert run.turns
            await asyncio.sleep(1.0)
            async with connect(f"{pipeline.url}?room={room}&listen=true&name=Late") as late:
                got = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        async for text in late:
                            got.append(json.loads(text))
                return got
        finally:
            for reader in readers:
                await reader.close()

    got = asyncio.run(scenario())
    history = [m for m in got if m.get("history")]
    kinds = [m["type"] for m in history]
    assert "turn" in kinds and "transcript" in kinds, kinds


def test_a_log_full_of_notices_still_gives_a_late_joiner_what_was_said(
    pipeline: RunningPipeline,
) -> None:
    """A final and its turn, then 300 no-translation notices (more than the 200 entries of
    history): the late joiner is shown the final, the turn and one notice per language."""
    room = f"crowded-{time.monotonic_ns()}"
    speaker = Participant("speaker-of-the-past", "Pat", listener=False)
    said = TranscriptResult("speaker-of-the-past", 0, 0, "we said this", 0.0, 1.0, "en", 1.0)
    client = redis.Redis.from_url(pipeline.redis_url)
    pipe = client.pipeline(transaction=False)
    log = keys.room_log(room)
    pipe.xadd(log, {"e": RoomTranscript(speaker, True, said).encode()})
    pipe.xadd(log, {"e": RoomTurn(speaker, 0, (0,), said).encode()})
    for n in range(300):
        notice = TranslationDone(
            "speaker-of-the-past", "Pat", 0, "en", ("fr", "de", "cy")[n % 3], "",
            error_code="translation_unavailable", error_message="no translator", turn_index=0,
        )  # fmt: skip
        pipe.xadd(log, {"e": notice.encode()})
    pipe.execute()
    client.close()

    async def late() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with connect(f"{pipeline.url}?room={room}&listen=true&name=Late") as ws:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    async for text in ws:
                        got.append(json.loads(text))
        return got

    history = [m for m in asyncio.run(late()) if m.get("history")]
    assert [m["type"] for m in history if m["type"] != "translation"] == ["transcript", "turn"]
    assert len([m for m in history if m["type"] == "translation"]) <= 3
