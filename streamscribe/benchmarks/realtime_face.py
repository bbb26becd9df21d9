"""OpenAI's Realtime transcription face, streamed as its clients do (24 kHz PCM16, base64 in
``input_audio_buffer.append``, server VAD), for ``bench --faces``.

What it said comes back as protocol v1's messages so every face is measured by the same
code: each ``...delta`` is a final (the finals' text as they came; its times are its item's
start, since deltas carry none), each ``...completed`` a turn from its item's
``speech_started`` to its ``speech_stopped``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared.client_messages import SessionBegin, SessionEnd, Transcript, Turn
from shared.errors import ClientError
from streamscribe.benchmarks.faces import paced
from streamscribe.client import Audio, Received, StreamRun

SESSION = "realtime"
RATE = 24000
QUIET_S = 5.0
"""After the audio, how long nothing may come (every item completed) before the end."""


def realtime_url(stream_url: str) -> str:
    parts = urlsplit(stream_url)
    return urlunsplit((parts.scheme, parts.netloc, "/v1/realtime", "intent=transcription", ""))


def _at_24k(audio: Audio, tail_silence_s: float) -> bytes:
    samples = np.frombuffer(audio.pcm, "<i2").astype(np.float32) / 32768
    if audio.sample_rate != RATE:
        samples = soxr.resample(samples, audio.sample_rate, RATE)
    padded = np.concatenate([samples, np.zeros(int(tail_silence_s * RATE), np.float32)])
    return bytes((np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes())


async def stream_realtime(
    url: str,
    audio: Audio,
    *,
    speed: float = 1.0,
    frame_ms: int = 50,
    tail_silence_s: float = 0.0,
    finish_timeout_s: float = 120.0,
) -> StreamRun:
    """Streams ``audio`` and ``tail_silence_s`` of silence; ends once every item that began
    is completed and nothing has come for :data:`QUIET_S`."""
    pcm = _at_24k(audio, tail_silence_s)
    audio_bytes = len(audio.pcm) * RATE // audio.sample_rate
    frame_bytes = RATE * frame_ms // 1000 * 2
    run = StreamRun()
    run.received.append(Received.of(time.time(), _begin()))
    try:
        ws = await connect(realtime_url(url), max_size=2**22, open_timeout=10)
    except OSError as exc:
        raise ClientError(f"cannot connect to {url}: {exc}") from exc
    streaming_s = len(pcm) / frame_bytes * frame_ms / 1000 / speed
    reader = _Reader(run)
    try:
        async with ws, asyncio.timeout(streaming_s + finish_timeout_s):
            await ws.recv()  # session.created
            await ws.send(json.dumps({"type": "session.update", "session": _session()}))
            await ws.recv()  # session.updated
            receiver = asyncio.create_task(reader.read(ws))
            run.started_at = time.time()
            async for offset, frame in paced(pcm, frame_bytes, frame_ms / 1000 / speed):
                chunk = base64.b64encode(frame).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
                if offset + frame_bytes >= audio_bytes and not run.audio_end_sent_at:
                    run.audio_end_sent_at = time.time()
            reader.heard()  # quiet is counted from the end of the audio at the earliest
            while not reader.settled(QUIET_S):
                await asyncio.sleep(0.2)
            await ws.close()
            await receiver
    except TimeoutError:
        raise ClientError(f"items from {url} not completed in {finish_timeout_s} s") from None
    run.close_code = 1000 if ws.close_code in (1000, None) else ws.close_code
    run.received.append(
        Received.of(time.time(), SessionEnd(SESSION, reader.seq + 1, len(pcm) / 2 / RATE, 0))
    )
    return run


def _session() -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad"},
            }
        },
    }


def _begin() -> SessionBegin:
    return SessionBegin(
        SESSION, 0, protocol=1, resume_token=None, sample_rate=RATE, encoding="pcm_s16le",
        language="en", model="", room=None, listen=False, translate=(), partials=False, name="",
    )  # fmt: skip


class _Reader:
    """The face's events as v1 messages, and whether every item that began is done."""

    def __init__(self, run: StreamRun) -> None:
        self.run = run
        self.seq = 0
        self._starts: dict[str, float] = {}
        self._ends: dict[str, float] = {}
        self._deltas: dict[str, list[str]] = {}
        self._completed: set[str] = set()
        self._last_at = time.monotonic()

    def heard(self) -> None:
        self._last_at = time.monotonic()

    def settled(self, quiet_s: float) -> bool:
        done = set(self._starts) <= self._completed
        return done and time.monotonic() - self._last_at >= quiet_s

    async def read(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                self._last_at = time.monotonic()
                self._event(time.time(), json.loads(text))

    def _event(self, at: float, event: dict[str, Any]) -> None:
        kind = event.get("type")
        item = str(event.get("item_id", ""))
        if kind == "input_audio_buffer.speech_started":
            self._starts[item] = event["audio_start_ms"] / 1000
        elif kind == "input_audio_buffer.speech_stopped":
            self._ends[item] = event["audio_end_ms"] / 1000
        elif kind == "conversation.item.input_audio_transcription.delta":
            self.seq += 1
            ids = self._deltas.setdefault(item, [])
            ids.append(f"{SESSION}-{self.seq}")
            start = self._starts.get(item, 0.0)
            final = Transcript(
                SESSION, self.seq, True, ids[-1], str(event["delta"]).strip(), start, start, ""
            )
            self.run.received.append(Received.of(at, final))
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.seq += 1
            self._completed.add(item)
            start = self._starts.get(item, 0.0)
            turn = Turn(
                SESSION, self.seq, item, tuple(self._deltas.get(item, ())),
                str(event["transcript"]), start, self._ends.get(item, start), "en", 1.0, (),
                "", True,
            )  # fmt: skip
            self.run.received.append(Received.of(at, turn))
        elif kind == "error":
            self.run.received.append(Received(at, {"type": "error", **event}))
