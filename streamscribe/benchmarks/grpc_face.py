"""The gRPC API's face, streamed as a gRPC client does it, for ``bench --faces``.

Its responses are protocol v1's messages, typed; they come back as those messages, so
every face is measured by the same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

import grpc
from msgspec import UNSET

from shared.client_messages import (
    Error,
    ServerMessage,
    SessionBegin,
    SessionEnd,
    Transcript,
    Turn,
    WordTimes,
)
from shared.errors import ClientError
from shared.grpc_api import transcription_pb2 as pb
from streamscribe.benchmarks.faces import paced
from streamscribe.client import Audio, Received, StreamRun

STREAM_METHOD = "/streamscribe.v1.Transcription/Stream"
CLOSE_CODE_KEY = "streamscribe-close-code"


def grpc_address(url: str) -> str:
    """``host:port`` of a ``grpc://host:port`` address."""
    if not url.startswith("grpc://"):
        raise ClientError(f"not a gRPC address (grpc://host:port): {url}")
    return url.removeprefix("grpc://").rstrip("/")


async def stream_grpc(
    url: str,
    audio: Audio,
    *,
    speed: float = 1.0,
    frame_ms: int = 50,
    tail_silence_s: float = 0.0,
    finish_timeout_s: float = 120.0,
) -> StreamRun:
    """Streams ``audio`` and ``tail_silence_s`` of silence over one ``Stream`` call to
    ``url`` (``grpc://host:port``), then ends its requests; waits for the call's end."""
    frame_bytes = audio.sample_rate * frame_ms // 1000 * 2
    pcm = audio.pcm + bytes(int(tail_silence_s * audio.sample_rate) * 2)
    streaming_s = len(pcm) / frame_bytes * frame_ms / 1000 / speed
    run = StreamRun()

    async def requests() -> AsyncIterator[pb.StreamRequest]:
        yield pb.StreamRequest(config=pb.StreamConfig(sample_rate=audio.sample_rate))
        run.started_at = time.time()
        async for offset, frame in paced(pcm, frame_bytes, frame_ms / 1000 / speed):
            yield pb.StreamRequest(audio=frame)
            if offset + frame_bytes >= len(audio.pcm) and not run.audio_end_sent_at:
                run.audio_end_sent_at = time.time()

    async with grpc.aio.insecure_channel(grpc_address(url)) as channel:
        stream = channel.stream_stream(
            STREAM_METHOD,
            request_serializer=pb.StreamRequest.SerializeToString,
            response_deserializer=pb.StreamResponse.FromString,
        )
        call = stream(requests())
        try:
            async with asyncio.timeout(streaming_s + finish_timeout_s):
                async for response in call:
                    message = message_of(response)
                    if message is not None:
                        run.received.append(Received.of(time.time(), message))
        except TimeoutError:
            call.cancel()
            raise ClientError(f"no end of the call from {url} in {finish_timeout_s} s") from None
        except grpc.aio.AioRpcError as exc:
            run.close_reason = f"{exc.code().name}: {exc.details()}"
            run.close_code = _close_code(exc.trailing_metadata())
            return run
        run.close_code = _close_code(await call.trailing_metadata())
    return run


def _close_code(metadata: grpc.aio.Metadata | None) -> int | None:
    for key, value in metadata or ():
        if key == CLOSE_CODE_KEY:
            return int(value)
    return None


def message_of(response: pb.StreamResponse) -> ServerMessage | None:
    """A response as the v1 message it stands for (None: one the bench does not read)."""
    sid, seq = response.session_id, response.seq
    kind = response.WhichOneof("message")
    if kind == "session_begin":
        b = response.session_begin
        return SessionBegin(
            sid,
            seq,
            protocol=b.protocol,
            resume_token=None,
            sample_rate=b.sample_rate,
            encoding=b.encoding,
            language=b.language,
            model=b.model,
            room=b.room or None,
            listen=b.listen,
            translate=tuple(b.translate),
            partials=b.partials,
            name=b.name,
        )
    if kind == "transcript":
        t = response.transcript
        return Transcript(
            sid,
            seq,
            is_final=t.is_final,
            utterance_id=t.utterance_id,
            text=t.text,
            start=t.start,
            end=t.end,
            speaker=t.speaker,
            language=t.language if t.is_final else UNSET,
            language_probability=t.language_probability if t.is_final else UNSET,
            words=_words(t.words) if t.is_final else UNSET,
            server_timing=dict(t.server_timing) if t.is_final and t.server_timing else UNSET,
            ended_by=t.ended_by or UNSET,
        )
    if kind == "turn":
        u = response.turn
        return Turn(
            sid,
            seq,
            turn_id=u.turn_id,
            utterance_ids=tuple(u.utterance_ids),
            text=u.text,
            start=u.start,
            end=u.end,
            language=u.language,
            language_probability=u.language_probability,
            words=_words(u.words),
            speaker=u.speaker,
            settled=u.settled,
        )
    if kind == "error":
        e = response.error
        return Error(sid, seq, code=e.code, message=e.message)
    if kind == "session_end":
        return SessionEnd(
            sid, seq, response.session_end.duration_s, response.session_end.utterances
        )
    return None


def _words(words: Iterable[pb.Word]) -> tuple[WordTimes, ...]:
    return tuple(WordTimes(w.word, w.start, w.end, w.probability) for w in words)
