"""Access tokens through the real pipeline: strangers are kept out with the documented close
codes, a listen-only token cannot speak, a good token streams as usual. The same deployment
runs with small upload limits, for the audio API's 401, 413 and 429."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import openai
import pytest
from openai import OpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ingest.auth import mint_token
from ingest.options import AuthOptions
from streamscribe.benchmarks.metrics import normalize
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, is_ready, start_up, stop_up, wait_until
from tests.e2e.grpc_clients import generate_client, run_client

pytestmark = pytest.mark.e2e

SECRET = "test-signing-secret-of-enough-length-0123456789"
AUTH = AuthOptions(SECRET)
UPLOAD_MAX_BYTES = 300_000


@pytest.fixture(scope="module")
def guarded() -> Iterator[RunningPipeline]:
    running = start_up(
        free_port(),
        transcribers=1,
        env={
            "STREAMSCRIBE_AUTH": "on",
            "STREAMSCRIBE_TOKEN_SECRET": SECRET,
            "STREAMSCRIBE_UPLOAD_MAX_BYTES": str(UPLOAD_MAX_BYTES),
            "STREAMSCRIBE_UPLOAD_MAX_QUEUED_WINDOWS": "1",
            "STREAMSCRIBE_UPLOAD_RETRY_AFTER_S": "7",
        },
    )
    yield running
    stop_up(running)


def token(*rooms: str, speak: bool = True, ttl: float = 600, now: float | None = None) -> str:
    return mint_token(AUTH, rooms=rooms, may_speak=speak, ttl_s=ttl, now=now)


async def refusal(
    url: str, *, send: str | bytes | None = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    """The close code and the error message the server sent before closing; ``send``: what
    to send once the session began."""
    async with connect(url, additional_headers=headers) as ws:
        messages = []
        try:
            if send is not None:
                await ws.recv()  # session.begin
                await ws.send(send)
            async for text in ws:
                messages.append(json.loads(text))
        except ConnectionClosed:
            pass
        assert ws.close_code is not None
        errors = [m for m in messages if m["type"] == "error"]
        assert len(errors) == 1, messages
        return ws.close_code, errors[0]


def test_strangers_get_4001_and_4003(guarded: RunningPipeline) -> None:
    base = guarded.url
    expired = token("42", ttl=60, now=time.time() - 3600)
    forged = mint_token(
        AuthOptions("another-secret-of-enough-length-0123456789"),
        rooms=["42"],
        may_speak=True,
        ttl_s=600,
    )
    cases = [
        (f"{base}?room=42", {}, 4001, "required"),
        (f"{base}?room=42&token={expired}", {}, 4001, "expired"),
        (f"{base}?room=42&token={forged}", {}, 4001, "not valid"),
        (f"{base}?room=43&token={token('42')}", {}, 4003, "does not grant room"),
    ]
    for url, headers, code, words in cases:
        closed, error = asyncio.run(refusal(url, **headers))
        assert (closed, error["code"] in ("unauthorized", "forbidden")) == (code, True), url
        assert words in error["message"]


def test_a_listen_only_token_cannot_speak(guarded: RunningPipeline) -> None:
    url = f"{guarded.url}?room=42&token={token('42', speak=False)}"
    for attempt in (bytes(3200), '{"type": "finalize"}'):
        closed, error = asyncio.run(refusal(url, send=attempt))
        assert closed == 4003 and "only allows listening" in error["message"], attempt


def test_a_good_token_streams_from_the_query_or_a_header(guarded: RunningPipeline) -> None:
    audio = read_audio(DATA / "ls-test-clean-1089-134691-0000.wav")
    run = asyncio.run(
        stream_audio(guarded.url, audio, speed=4.0, params={"room": "42", "token": token("42")})
    )
    assert run.close_code == 1000
    assert normalize(run.transcript) == "he could wait no longer"

    async def with_header() -> str:
        async with connect(
            f"{guarded.url}?room=7", additional_headers={"Authorization": f"Bearer {token('*')}"}
        ) as ws:
            begin = json.loads(await ws.recv())
            await ws.send('{"type": "close"}')
            return str(begin["type"])

    assert asyncio.run(with_header()) == "session.begin"


def test_grpc_calls_bring_their_token_in_metadata(
    guarded: RunningPipeline, tmp_path_factory: pytest.TempPathFactory
) -> None:
    generated = generate_client(tmp_path_factory.mktemp("grpc-client"))
    audio = str(DATA / "ls-test-clean-1089-134691-0000.wav")
    forged = mint_token(
        AuthOptions("another-secret-of-enough-length-0123456789"),
        rooms=["42"],
        may_speak=True,
        ttl_s=600,
    )
    cases = [
        ([], "UNAUTHENTICATED", "4001", "required"),
        (["--token", forged], "UNAUTHENTICATED", "4001", "not valid"),
        (["--token", token("42")], "PERMISSION_DENIED", "4003", "does not grant room"),
        (["--token", token("43", speak=False)], "PERMISSION_DENIED", "4003", "only allows"),
    ]
    for args, status, close_code, words in cases:
        lines = run_client(generated, guarded.grpc, audio, "--room", "43", *args)
        ended = lines[-1]
        assert (ended["status"], ended["trailing"]["streamscribe-close-code"]) == (
            status,
            close_code,
        ), args
        assert words in ended["details"], ended
    lines = run_client(generated, guarded.grpc, audio, "--room", "43", "--token", token("43"))
    assert lines[-1]["status"] == "OK"
    finals = [m["transcript"]["text"] for m in lines if m.get("transcript", {}).get("is_final")]
    assert normalize(" ".join(finals)) == "he could wait no longer"


def test_a_page_from_another_origin_is_refused(guarded: RunningPipeline) -> None:
    async def attempt() -> int:
        try:
            async with connect(
                f"{guarded.url}?token={token('*')}",
                origin="https://evil.example",  # type: ignore[arg-type]
            ):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(attempt()) == 403


def test_deepgram_clients_bring_their_token_as_an_api_key(guarded: RunningPipeline) -> None:
    """Deepgram's SDK sends its API key as ``Authorization: Token ...``; a bad one is refused
    at the handshake with Deepgram's 401 body, a token without the room with 403."""
    listen = guarded.http.replace("http://", "ws://") + "/v1/listen"

    async def handshake(query: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": authorization} if authorization else {}
        try:
            async with connect(listen + query, additional_headers=headers) as ws:
                await ws.send('{"type": "CloseStream"}')
                messages = [json.loads(m) async for m in ws]
                return 101, messages[-1]
        except InvalidStatus as refused:
            return refused.response.status_code, json.loads(refused.response.body)

    status, metadata = asyncio.run(handshake("?room=42", f"Token {token('42')}"))
    assert status == 101 and metadata["type"] == "Metadata"
    status, _ = asyncio.run(handshake("", f"Bearer {token('*')}"))
    assert status == 101
    status, body = asyncio.run(handshake("", None))
    assert (status, body["err_code"]) == (401, "INVALID_AUTH")
    status, body = asyncio.run(handshake("", "Token not-a-token"))
    assert (status, body["err_code"]) == (401, "INVALID_AUTH")
    status, body = asyncio.run(handshake("?room=9", f"Token {token('42')}"))
    assert (status, body["err_code"]) == (403, "INSUFFICIENT_PERMISSIONS")


def _openai(pipeline: RunningPipeline, api_key: str) -> OpenAI:
    return OpenAI(base_url=pipeline.http + "/v1", api_key=api_key, max_retries=0, timeout=300)


def _compressed(path: Path, bitrate: int = 32000) -> bytes:
    """An MP3 of ``path``: 50 s in about 200 kB, under the upload limit."""
    samples = np.frombuffer(read_audio(path).pcm, "<i2").reshape(1, -1)
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp3") as file:
        stream = file.add_stream("libmp3lame", rate=16000, layout="mono")  # type: ignore[call-overload]
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=16000)
        for part in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(part):
                file.mux(packet)
        for packet in stream.encode(None):
            file.mux(packet)
    return out.getvalue()


def test_the_audio_api_takes_a_token_as_its_api_key(guarded: RunningPipeline) -> None:
    assert wait_until(lambda: is_ready(guarded), timeout=180)
    short = ("short.wav", (DATA / "ls-test-clean-1089-134691-0000.wav").read_bytes())  # 3 s
    with pytest.raises(openai.AuthenticationError) as caught:
        _openai(guarded, "not-a-token").audio.transcriptions.create(model="whisper-1", file=short)
    assert caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        _openai(guarded, "not-a-token").models.list()
    allowed = _openai(guarded, token("*"))
    answer = allowed.audio.transcriptions.create(model="whisper-1", file=short)
    assert (
        normalize(answer.text) == "he could wait no longer"
    )  # the reference: HE COULD WAIT NO LONGER
    assert [m.id for m in allowed.models.list().data] == ["tiny.en"]


def test_uploads_past_the_limits_are_413_and_429(guarded: RunningPipeline) -> None:
    assert wait_until(lambda: is_ready(guarded), timeout=180)
    api = _openai(guarded, token("*")).audio.transcriptions
    jfk = (DATA / "jfk-inaugural-1961.wav").read_bytes()
    assert len(jfk) > UPLOAD_MAX_BYTES
    with pytest.raises(openai.APIStatusError) as too_large:
        api.create(model="whisper-1", file=("jfk.wav", jfk))
    assert too_large.value.status_code == 413 and too_large.value.code == "file_too_large"

    two_windows = _compressed(DATA / "long-ljspeech-LJ001-0001-0008.wav")  # 50 s
    assert len(two_windows) < UPLOAD_MAX_BYTES
    with pytest.raises(openai.RateLimitError) as full:  # one window may wait, it has two
        api.create(model="whisper-1", file=("long.mp3", two_windows))
    assert full.value.response.headers["retry-after"] == "7"
    assert full.value.code == "rate_limit_exceeded"
