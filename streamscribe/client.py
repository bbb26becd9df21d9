"""A protocol v1 streaming client: reads an audio file and streams it at real-time pace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import numpy as np
import soundfile
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shared import client_messages
from shared.client_messages import KNOWN_TYPES, ServerMessage, SessionBegin, Transcript, Turn
from shared.errors import ClientError, SchemaError
from shared.resilience import Delays

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
    if not Path(path).is_file():
        what = "is a directory" if Path(path).is_dir() else "does not exist"
        raise ClientError(f"cannot read audio file {path}: it {what}")
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
    """The message as JSON."""
    typed: ServerMessage | None = None
    """The message decoded by protocol v1's schema (``shared.client_messages``); None for a
    kind this client does not know (a newer server's), kept as JSON only."""

    @classmethod
    def of(cls, at: float, message: ServerMessage) -> Received:
        """A typed message as if it had arrived at ``at`` (for replaying or testing)."""
        return cls(at, client_messages.as_dict(message), message)


MessageT = TypeVar("MessageT")


@dataclass(frozen=True, slots=True)
class Timed(Generic[MessageT]):
    """A typed message and when it arrived (``time.time()``)."""

    at: float
    message: MessageT


def _decoded(text: str | bytes) -> tuple[ServerMessage | None, dict[str, Any]]:
    """A server frame typed by protocol v1's schema, and as its JSON (all of it, fields this
    client does not know included). A frame of a known ``type`` that the schema refuses is an
    error; one of an unknown ``type`` (a newer server's) is kept as JSON only."""
    message = json.loads(text)
    if not isinstance(message, dict):
        raise ClientError(f"the server sent a message that is not a JSON object: {text!r:.80}")
    try:
        return client_messages.decode(text), message
    except SchemaError as exc:
        if message.get("type") in KNOWN_TYPES:
            raise ClientError(f"the server sent a malformed message: {exc}") from exc
        return None, message


@dataclass
class StreamRun:
    """What one streamed session sent and received, with wall-clock times."""

    started_at: float = 0.0
    audio_end_sent_at: float = 0.0
    """When the last sample of the file (not of the trailing silence) was sent."""
    received: list[Received] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    resumes: int = 0
    """Times the connection dropped and the session was taken up again."""
    audio_resent_s: float = 0.0
    """Audio sent again after a resume because the server had not stored it."""
    audio_lost_s: float = 0.0
    """Audio the server had not stored and the client no longer kept."""

    @property
    def session_id(self) -> str | None:
        for r in self.received:
            if isinstance(r.typed, SessionBegin):
                return r.typed.session_id
        return None

    def _own_transcripts(self, final: bool) -> list[tuple[Received, Transcript]]:
        """This session's own transcripts (in a room, others' arrive too)."""
        own = self.session_id
        return [
            (r, r.typed)
            for r in self.received
            if isinstance(r.typed, Transcript)
            and r.typed.is_final == final
            and r.typed.session_id == own
        ]

    def _own_turns(self) -> list[tuple[Received, Turn]]:
        own = self.session_id
        return [
            (r, r.typed)
            for r in self.received
            if isinstance(r.typed, Turn) and r.typed.session_id == own
        ]

    @property
    def finals(self) -> list[Timed[Transcript]]:
        """This session's finals, typed, with when each came."""
        return [Timed(r.at, m) for r, m in self._own_transcripts(final=True)]

    @property
    def partials(self) -> list[Timed[Transcript]]:
        return [Timed(r.at, m) for r, m in self._own_transcripts(final=False)]

    @property
    def turns(self) -> list[Timed[Turn]]:
        return [Timed(r.at, m) for r, m in self._own_turns()]

    @property
    def errors(self) -> list[Mapping[str, Any]]:
        return [r.message for r in self.received if r.message.get("type") == "error"]

    @property
    def fast_transcript(self) -> str:
        """The finals alone, as they came."""
        return " ".join(f.message.text.strip() for f in self.finals).strip()

    @property
    def transcript(self) -> str:
        """The settled text: each turn in place of the finals it settles."""
        return settled_text([r.message for r in self.received], self.session_id)


def settled_text(messages: Sequence[Mapping[str, Any]], session_id: str | None) -> str:
    """A session's transcript from its messages in order: finals, each replaced by the turn
    that settles it (a turn that settles none of the finals held is added where it comes)."""
    lines: list[tuple[str, str]] = []
    """(utterance or turn id, text), in the order shown."""
    for message in messages:
        if message.get("session_id") != session_id:
            continue
        kind = message.get("type")
        if kind == "transcript" and message.get("is_final"):
            lines.append((str(message["utterance_id"]), str(message["text"]).strip()))
        elif kind == "turn":
            settled = {str(u) for u in message.get("utterance_ids", ())}
            at = next((i for i, (uid, _) in enumerate(lines) if uid in settled), len(lines))
            kept = [line for line in lines[:at]]
            rest = [line for line in lines[at:] if line[0] not in settled]
            lines = [*kept, (str(message["turn_id"]), str(message["text"]).strip()), *rest]
    return " ".join(text for _, text in lines if text).strip()


def stream_url(base: str, params: Mapping[str, str]) -> str:
    if not params:
        return base
    return base + ("&" if "?" in base else "?") + urlencode(params)


RESUMABLE_CLOSES = frozenset({1001, 1006, 1012})
"""Close codes after which the session may live on: going away, no close frame, restart."""


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
    fallback_urls: Sequence[str] = (),
    resume_for_s: float = 60.0,
    keep_audio_s: float = 120.0,
) -> StreamRun:
    """Streams ``audio``, then ``tail_silence_s`` of silence, then ``close``; waits for the end.

    When the connection drops, resumes the session (on ``url`` or any of ``fallback_urls``,
    for up to ``resume_for_s``): missed messages arrive once, and the audio the server did
    not store is sent again from the last ``keep_audio_s`` kept.
    """
    if speed <= 0:
        raise ClientError("speed must be positive")
    frame_bytes = audio.sample_rate * frame_ms // 1000 * 2
    tail = bytes(int(tail_silence_s * audio.sample_rate) * 2)
    streamer = _ResumingStreamer(
        audio.pcm + tail,
        audio.sample_rate,
        frame_bytes=frame_bytes,
        seconds_per_frame=frame_ms / 1000 / speed,
        audio_end=len(audio.pcm),
        keep_bytes=int(keep_audio_s * audio.sample_rate) * 2,
        on_message=on_message,
    )
    query = {"sample_rate": str(audio.sample_rate), **(params or {})}
    urls = [url, *fallback_urls]
    ws = await _connect(stream_url(url, query), url)
    try:
        streaming_s = len(streamer.pcm) / frame_bytes * frame_ms / 1000 / speed
        async with asyncio.timeout(streaming_s + finish_timeout_s + resume_for_s):
            while True:
                await streamer.attend(ws)
                code = streamer.run.close_code
                if code not in RESUMABLE_CLOSES or streamer.resume_token is None:
                    break
                ws = await _reconnect(urls, query, streamer, resume_for_s)
    except TimeoutError:
        raise ClientError(f"no end of session from {url} within {finish_timeout_s} s") from None
    return streamer.run


async def _connect(address: str, shown: str) -> Any:
    try:
        return await connect(address, max_size=2**22, open_timeout=10)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise ClientError(f"cannot connect to {shown}: {exc}") from exc


async def _reconnect(
    urls: Sequence[str], query: Mapping[str, str], streamer: _ResumingStreamer, for_s: float
) -> Any:
    """A connection that resumes the session, trying each address in turn with backoff."""
    deadline = time.monotonic() + for_s
    delays = Delays(first_s=0.1, max_s=2.0)
    attempt = 0
    while True:
        url = urls[(attempt + 1) % len(urls)]  # the next node first: the last one failed
        attempt += 1
        resume = {**query, "resume": str(streamer.resume_token), "last_seq": str(streamer.last_seq)}
        try:
            ws = await _connect(stream_url(url, resume), url)
        except ClientError:
            delay = delays.next()
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            continue
        streamer.run.resumes += 1
        return ws


class _ResumingStreamer:
    """Sends audio at its pace and gathers messages across the connections of one session."""

    def __init__(
        self,
        pcm: bytes,
        sample_rate: int,
        *,
        frame_bytes: int,
        seconds_per_frame: float,
        audio_end: int,
        keep_bytes: int,
        on_message: Callable[[Received], None] | None,
    ) -> None:
        self.pcm = pcm
        self.sample_rate = sample_rate
        self.run = StreamRun()
        self.resume_token: str | None = None
        self.last_seq = 0
        self._frame_bytes = frame_bytes
        self._seconds_per_frame = seconds_per_frame
        self._audio_end = audio_end
        self._keep_bytes = keep_bytes
        self._on_message = on_message
        self._sent = 0
        """Bytes of ``pcm`` sent (the next to send)."""
        self._close_sent = False
        self._clock = 0.0

    async def attend(self, ws: Any) -> None:
        """One connection: until it ends, cleanly or not."""
        begun = asyncio.Event()
        receiver = asyncio.create_task(self._receive(ws, begun))
        try:
            async with asyncio.timeout(30):
                await begun.wait()
        except TimeoutError:
            if not receiver.done():
                raise ClientError("no session.begin from the server") from None
        if not receiver.done():
            with contextlib.suppress(ConnectionClosed):
                await self._send(ws, receiver)
        await receiver
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await asyncio.wait_for(ws.close(), 5)

    async def _send(self, ws: Any, receiver: asyncio.Task[None]) -> None:
        if not self._clock:
            self.run.started_at = time.time()
            self._clock = time.monotonic()
        while self._sent < len(self.pcm) and not receiver.done():
            number = self._sent // self._frame_bytes
            delay = self._clock + number * self._seconds_per_frame - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = self.pcm[self._sent : self._sent + self._frame_bytes]
            await ws.send(chunk)
            self._sent += len(chunk)
            if self._sent >= self._audio_end and not self.run.audio_end_sent_at:
                self.run.audio_end_sent_at = time.time()
        if not receiver.done():
            await ws.send(json.dumps({"type": "close"}))
            self._close_sent = True

    async def _receive(self, ws: Any, begun: asyncio.Event) -> None:
        greeted = False
        """Before ``session.begin`` only a refusal comes, numbered on its own: taken as is."""
        try:
            async for text in ws:
                typed, message = _decoded(text)
                seq = int(message.get("seq", 0))
                if message.get("type") == "session.begin":
                    greeted = True
                    self._begin(message)
                    begun.set()
                    if message.get("resumed"):
                        continue  # the session goes on: not a new beginning
                elif greeted and seq <= self.last_seq:
                    continue  # replayed after a resume, already held
                if greeted:
                    self.last_seq = max(self.last_seq, seq)
                received = Received(time.time(), message, typed)
                self.run.received.append(received)
                if self._on_message is not None:
                    self._on_message(received)
        except ConnectionClosed:
            pass
        finally:
            begun.set()
        self.run.close_code = ws.close_code
        self.run.close_reason = ws.close_reason or ""

    def _begin(self, message: Mapping[str, Any]) -> None:
        self.resume_token = message.get("resume_token") or self.resume_token
        if not message.get("resumed"):
            return
        stored = int(message.get("samples_received", 0)) * 2
        kept_from = max(0, self._sent - self._keep_bytes)
        if stored < kept_from:
            self.run.audio_lost_s += (kept_from - stored) / 2 / self.sample_rate
            stored = kept_from
        self.run.audio_resent_s += max(0, self._sent - stored) / 2 / self.sample_rate
        self._sent = min(stored, self._sent)
