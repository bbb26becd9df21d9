"""Deepgram's live API on a running ``up``, driven by Deepgram's own Python SDK.

The SDK is pointed at the server by its environment (the base URL, as pipecat's and LiveKit's
Deepgram services let their users do) and sends what pipecat sends: audio, ``KeepAlive``
every few seconds, ``Finalize`` when the speaker pauses, ``CloseStream`` at the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from deepgram import DeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.core.events import EventType
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import (
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streamscribe.benchmarks.metrics import corpus_wer
from streamscribe.client import Audio, read_audio, stream_audio
from tests.conftest import DATA, RunningPipeline

pytestmark = pytest.mark.e2e

PAUSED = DATA / "vad-pause-3s-1988-24833-0000-0002.wav"
"""Speech, 3 s of silence from 3.32 s, speech."""
REFERENCE = (
    "THE TWO STRAY KITTENS GRADUALLY MAKE THEMSELVES AT HOME SHE DOESN'T PICK THEM UP BUT JUST "
    "HAVING THEM IN THE ROOM SURE DOESN'T GIVE HER ASTHMA"
)
CHUNK_S = 0.1
FINALIZE_AT_S = 2.0
SPEED = 2.0


def _client(pipeline: RunningPipeline, api_key: str = "any") -> DeepgramClient:
    ws = pipeline.http.replace("http://", "ws://")
    environment = DeepgramClientEnvironment(
        base=pipeline.http, production=ws, agent=ws, agent_rest=pipeline.http
    )
    return DeepgramClient(api_key=api_key, environment=environment)


@dataclass
class Heard:
    messages: list[Any] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    finalized_at: int = -1
    """How many messages had come when ``Finalize`` was sent."""

    def results(self, *, final: bool) -> list[ListenV1Results]:
        return [m for m in self.messages if isinstance(m, ListenV1Results) and m.is_final == final]

    def transcript(self) -> str:
        return " ".join(r.channel.alternatives[0].transcript for r in self.results(final=True))


def _pipecat_session(pipeline: RunningPipeline, audio: Audio, **options: str) -> Heard:
    """Streams ``audio`` as pipecat's DeepgramSTTService does, at ``SPEED``x real time, with
    ``KeepAlive`` every 5 s and one ``Finalize``, sent 2 s into the recording (mid-sentence,
    as a client's own voice detection may decide), then ``CloseStream``."""
    heard = Heard()
    chunk = int(audio.sample_rate * CHUNK_S) * 2
    finalize_at = int(FINALIZE_AT_S * audio.sample_rate) * 2
    with _client(pipeline).listen.v1.connect(
        model="nova-3",
        encoding="linear16",
        sample_rate=str(audio.sample_rate),
        channels="1",
        **options,
    ) as socket:
        socket.on(EventType.MESSAGE, heard.messages.append)
        socket.on(EventType.CLOSE, lambda _: heard.closed.set())
        listener = threading.Thread(target=socket.start_listening, daemon=True)
        listener.start()
        last_keepalive = time.monotonic()
        finalized = False
        pcm = audio.pcm + bytes(int(audio.sample_rate * 1.0) * 2)
        for offset in range(0, len(pcm), chunk):
            socket.send_media(pcm[offset : offset + chunk])
            if not finalized and offset >= finalize_at:
                heard.finalized_at = len(heard.messages)
                socket.send_finalize()
                finalized = True
            if time.monotonic() - last_keepalive >= 5.0 / SPEED:
                socket.send_keep_alive()
                last_keepalive = time.monotonic()
            time.sleep(CHUNK_S / SPEED)
        socket.send_close_stream()
        assert heard.closed.wait(60), "the server did not end the stream after CloseStream"
        listener.join(10)
    return heard


def test_the_deepgram_sdk_gets_finals_interims_vad_events_and_metadata(
    pipeline: RunningPipeline,
) -> None:
    audio = read_audio(PAUSED)
    heard = _pipecat_session(
        pipeline,
        audio,
        interim_results="true",
        vad_events="true",
        utterance_end_ms="1000",
        smart_format="true",
        punctuate="true",
    )
    finals = heard.results(final=True)
    assert len(finals) >= 2, heard.messages
    # Finalize ended the utterance where it came, and its final says so; the others ended
    # at pauses (speech_final)
    (answer,) = (f for f in finals if f.from_finalize)
    assert answer in heard.messages[heard.finalized_at :]
    assert answer.start + answer.duration <= FINALIZE_AT_S + 0.2
    assert all(f.speech_final for f in finals)
    assert heard.results(final=False), "interim results were asked for"
    for result in finals:
        words = result.channel.alternatives[0].words
        assert words and words[0].start >= result.start - 0.05
        assert words[-1].end <= result.start + result.duration + 0.05
        assert 0 < result.channel.alternatives[0].confidence <= 1
        assert result.metadata.model_info.name == "nova-3"
    # SpeechStarted before each utterance's first result, UtteranceEnd after each final
    kinds = [type(m).__name__ for m in heard.messages]
    assert kinds.count("ListenV1SpeechStarted") == len(finals)
    assert kinds.count("ListenV1UtteranceEnd") == len(finals)
    first_result = next(i for i, m in enumerate(heard.messages) if isinstance(m, ListenV1Results))
    assert isinstance(heard.messages[first_result - 1], ListenV1SpeechStarted)
    assert isinstance(heard.messages[-1], ListenV1Metadata)
    assert abs(heard.messages[-1].duration - (audio.seconds + 1.0)) < 0.2
    ends = [m for m in heard.messages if isinstance(m, ListenV1UtteranceEnd)]
    assert ends[0].last_word_end <= 3.5

    # the same words as protocol v1 gives for the same audio
    v1 = asyncio.run(
        stream_audio(pipeline.url, audio, speed=4, tail_silence_s=1.0, params={"partials": "false"})
    )
    deepgram_wer = corpus_wer([REFERENCE], [heard.transcript()])
    v1_wer = corpus_wer([REFERENCE], [v1.fast_transcript])
    print(f"fast-final WER: Deepgram face {deepgram_wer:.4f}, protocol v1 {v1_wer:.4f}")
    assert deepgram_wer <= v1_wer + 0.05


def test_without_interim_results_only_finals_come(pipeline: RunningPipeline) -> None:
    heard = _pipecat_session(pipeline, read_audio(DATA / "ls-test-clean-1089-134691-0001.wav"))
    assert heard.results(final=False) == []
    assert heard.results(final=True)
    assert not any(
        isinstance(m, ListenV1SpeechStarted | ListenV1UtteranceEnd) for m in heard.messages
    )
    assert "WAIT NO LONGER" in heard.transcript().upper().replace(",", "")


def test_bad_parameters_are_refused_at_the_handshake(pipeline: RunningPipeline) -> None:
    connecting = _client(pipeline).listen.v1.connect(model="nova-3", channels="2")
    # the SDK turns a refusal into ApiError with older websockets; with 14+ it passes on
    # websockets' own InvalidStatus
    with pytest.raises((ApiError, InvalidStatus)) as refused, connecting:
        pass
    error = refused.value
    status = error.status_code if isinstance(error, ApiError) else error.response.status_code
    assert status == 400

    async def raw_refusal() -> InvalidStatus:
        url = pipeline.http.replace("http://", "ws://") + "/v1/listen?channels=2"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        return refused.value

    response = asyncio.run(raw_refusal()).response
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert body["err_code"] == "Bad Request" and body["err_msg"].startswith("channels:")


async def _raw(
    url: str, frames: list[str | bytes], *, wait_s: float = 30
) -> tuple[int, str, list[Any]]:
    received: list[Any] = []
    async with connect(url) as ws:
        for frame in frames:
            await ws.send(frame)
        try:
            async with asyncio.timeout(wait_s):
                async for message in ws:
                    received.append(message)
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        return ws.close_code or 1006, ws.close_reason or "", received


def test_bad_messages_and_silence_close_as_deepgram_does(pipeline: RunningPipeline) -> None:
    listen = pipeline.http.replace("http://", "ws://") + "/v1/listen?encoding=linear16"

    async def scenario() -> None:
        healthy = asyncio.create_task(
            stream_audio(pipeline.url, read_audio(DATA / "ls-test-clean-1089-134691-0000.wav"))
        )
        code, reason, messages = await _raw(listen, [b"\x00" * 3200, '{"type": "Configure"}'])
        assert code == 1003 and "unknown message type" in messages[-1]
        code, reason, _ = await _raw(listen, [b"\x00" * 3200], wait_s=30)
        assert (code, reason) == (1011, "NET-0001")  # nothing for 10 s
        run = await healthy
        assert run.close_code == 1000 and "WAIT NO LONGER" in run.fast_transcript.upper()

    asyncio.run(scenario())
