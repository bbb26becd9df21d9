"""A protocol v1 streaming client: reads an audio file and streams it at real-time pace."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import soundfile
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shared.errors import ClientError

DEFAULT_URL = "ws://127.0.0.1:8080/v1/stream"


@dataclass(frozen=True, slots=True)
class Audio:
    pcm: bytes
    """Mono s16le."""
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


def read_audio(path: str | Path) -> Audio:
    """WAV, FLAC or anything libsndfile reads; stereo is mixed down to mono."""
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, OSError, RuntimeError) as exc:
        raise ClientError(f"cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise ClientError(f"audio file {path} has no samples")
    mono = data.mean(axis=1)
    pcm = (np.clip(mono, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
    return Audio(pcm, int(rate))


@dataclass(frozen=True, slots=True)
class Received:
    at: float
    message: Mapping[str, Any]


@dataclass
class StreamRun:
    """What one streamed session sent and received, with wall-clock times."""

    started_at: float = 0.0
    audio_end_sent_at: float = 0.0
    """When the last sample of the file (not of the trailing silence) was sent."""
    received: list[Received] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def session_id(self) -> str | None:
        for r in self.received:
            if r.message.get("type") == "session.begin":
                return str(r.message["session_id"])
        return None

    def _transcripts(self, final: bool) -> list[Received]:
        """This session's own transcripts (in a room, others' arrive too)."""
        own = self.session_id
        return [
            r
            for r in self.received
            if r.message.get("type") == "transcript"
            and bool(r.message.get("is_final")) == final
            and r.message.get("session_id") == own
        ]

    @property
    def finals(self) -> list[Received]:
        return self._transcripts(final=True)

    @property
    def partials(self) -> list[Received]:
        return self._transcripts(final=False)

    @property
    def errors(self) -> list[Mapping[str, Any]]:
        return [r.message for r in self.received if r.message.get("type") == "error"]

    @property
    def transcript(self) -> str:
        return " ".join(str(r.message["text"]).strip() for r in self.finals).strip()


def stream_url(base: str, params: Mapping[str, str]) -> str:
    if not params:
        return base
    return base + ("&" if "?" in base else "?") + urlencode(params)


async def stream_audio(
    url: str,
    audio: Audio,
    *,
    speed: float = 1.0,
    frame_ms: int = 50,
    tail_silence_s: float = 0.0,
    params: Mapping[str, str] | None = None,
    on_message: Callable[[Received], None] | None = None,
    finish_timeout_s: float = 120.0,
) -> StreamRun:
    """Streams ``audio``, then ``tail_silence_s`` of silence, then ``close``; waits for the end."""
    if speed <= 0:
        raise ClientError("speed must be positive")
    query = {"sample_rate": str(audio.sample_rate), **(params or {})}
    run = StreamRun()
    try:
        ws = await connect(stream_url(url, query), max_size=2**22, open_timeout=10)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise ClientError(f"cannot connect to {url}: {exc}") from exc
    async with ws:
        receiver = asyncio.create_task(_receive(ws, run, on_message))
        frame_bytes = audio.sample_rate * frame_ms // 1000 * 2
        silence = bytes(frame_bytes)
        tail_frames = int(tail_silence_s * 1000 / frame_ms)
        chunks = [audio.pcm[i : i + frame_bytes] for i in range(0, len(audio.pcm), frame_bytes)]
        run.started_at = time.time()
        clock = time.monotonic()
        try:
            for number, chunk in enumerate(chunks + [silence] * tail_frames):
                if receiver.done():
                    break
                delay = clock + number * frame_ms / 1000 / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await ws.send(chunk)
                if number == len(chunks) - 1:
                    run.audio_end_sent_at = time.time()
            if not receiver.done():
                await ws.send(json.dumps({"type": "close"}))
        except ConnectionClosed:
            pass
        try:
            await asyncio.wait_for(receiver, finish_timeout_s)
        except TimeoutError:
            raise ClientError(f"no end of session from {url} within {finish_timeout_s} s") from None
    return run


async def _receive(ws: Any, run: StreamRun, on_message: Callable[[Received], None] | None) -> None:
    try:
        async for text in ws:
            received = Received(time.time(), json.loads(text))
            run.received.append(received)
            if on_message is not None:
                on_message(received)
    except ConnectionClosed:
        pass
    run.close_code = ws.close_code
    run.close_reason = ws.close_reason or ""
