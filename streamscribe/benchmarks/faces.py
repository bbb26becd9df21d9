"""The other faces of a session, streamed the way their own clients do, for ``bench --faces``.

Each streams one recording at its pace and hands back a :class:`StreamRun` whose messages are
what the face said, as protocol v1's messages, so every face is measured by the same code:
a Deepgram ``Results`` with ``is_final`` is a final (its ``start`` and ``duration`` say where
in the stream it ends), ``Metadata`` the session's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from msgspec import UNSET
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared.client_messages import SessionBegin, SessionEnd, Transcript, WordTimes
from shared.errors import ClientError
from streamscribe.client import Audio, Received, StreamRun

FACES = ("v1", "deepgram", "realtime", "grpc")
DEEPGRAM_SESSION = "deepgram"
"""The session id the converted messages carry (Deepgram's results name none)."""


async def paced(
    pcm: bytes, frame_bytes: int, seconds_per_frame: float
) -> AsyncIterator[tuple[int, bytes]]:
    """``pcm`` in frames of ``frame_bytes``, each (with its offset) when its time comes: the
    n-th ``n * seconds_per_frame`` after the first, whatever sending them took."""
    clock = time.monotonic()
    for number, offset in enumerate(range(0, len(pcm), frame_bytes)):
        delay = clock + number * seconds_per_frame - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield offset, pcm[offset : offset + frame_bytes]


def listen_url(stream_url: str, query: dict[str, str]) -> str:
    """``/v1/listen`` on the server of a ``/v1/stream`` address."""
    parts = urlsplit(stream_url)
    return urlunsplit((parts.scheme, parts.netloc, "/v1/listen", urlencode(query), ""))


async def stream_deepgram(
    url: str,
    audio: Audio,
    *,
    speed: float = 1.0,
    frame_ms: int = 50,
    tail_silence_s: float = 0.0,
    finish_timeout_s: float = 120.0,
) -> StreamRun:
    """Streams ``audio`` and ``tail_silence_s`` of silence to ``url``'s ``/v1/listen`` with
    interim results, then ``CloseStream``; waits for the server to close."""
    query = {
        "encoding": "linear16",
        "sample_rate": str(audio.sample_rate),
        "channels": "1",
        "interim_results": "true",
        "model": "nova-3",
    }
    frame_bytes = audio.sample_rate * frame_ms // 1000 * 2
    pcm = audio.pcm + bytes(int(tail_silence_s * audio.sample_rate) * 2)
    run = StreamRun()
    run.received.append(Received.of(time.time(), _begin(audio.sample_rate)))
    try:
        ws = await connect(listen_url(url, query), max_size=2**22, open_timeout=10)
    except OSError as exc:
        raise ClientError(f"cannot connect to {url}: {exc}") from exc
    streaming_s = len(pcm) / frame_bytes * frame_ms / 1000 / speed
    try:
        async with ws, asyncio.timeout(streaming_s + finish_timeout_s):
            receiver = asyncio.create_task(_receive(ws, run))
            run.started_at = time.time()
            with contextlib.suppress(ConnectionClosed):
                async for offset, frame in paced(pcm, frame_bytes, frame_ms / 1000 / speed):
                    await ws.send(frame)
                    if offset + frame_bytes >= len(audio.pcm) and not run.audio_end_sent_at:
                        run.audio_end_sent_at = time.time()
                await ws.send(json.dumps({"type": "CloseStream"}))
            await receiver
    except TimeoutError:
        raise ClientError(f"no end of stream from {url} within {finish_timeout_s} s") from None
    run.close_code = ws.close_code
    run.close_reason = ws.close_reason or ""
    return run


def _begin(sample_rate: int) -> SessionBegin:
    return SessionBegin(
        DEEPGRAM_SESSION,
        0,
        protocol=1,
        resume_token=None,
        sample_rate=sample_rate,
        encoding="pcm_s16le",
        language="en",
        model="",
        room=None,
        listen=False,
        translate=(),
        partials=True,
        name="",
    )


async def _receive(ws: Any, run: StreamRun) -> None:
    seq = 0
    utterance = 0
    with contextlib.suppress(ConnectionClosed):
        async for text in ws:
            at = time.time()
            message = json.loads(text)
            seq += 1
            kind = message.get("type")
            if kind == "Results":
                run.received.append(Received.of(at, _transcript(message, seq, utterance)))
                utterance += bool(message.get("is_final"))
            elif kind == "Metadata":
                duration = float(message.get("duration", 0.0))
                finals = sum(1 for m in run.finals if m.message.text)
                run.received.append(
                    Received.of(at, SessionEnd(DEEPGRAM_SESSION, seq, duration, finals))
                )
            elif kind == "Error":
                run.received.append(Received(at, {"type": "error", **message}))


def _transcript(results: dict[str, Any], seq: int, utterance: int) -> Transcript:
    alternative = results["channel"]["alternatives"][0]
    start = float(results["start"])
    words = tuple(
        WordTimes(w["punctuated_word"], w["start"], w["end"], w["confidence"])
        for w in alternative.get("words", ())
    )
    return Transcript(
        DEEPGRAM_SESSION,
        seq,
        is_final=bool(results.get("is_final")),
        utterance_id=f"{DEEPGRAM_SESSION}-{utterance}",
        text=alternative["transcript"],
        start=start,
        end=round(start + float(results["duration"]), 3),
        speaker="",
        words=words if results.get("is_final") else UNSET,
    )
