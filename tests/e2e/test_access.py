"""Access tokens through the real pipeline: strangers are kept out with the documented close
codes, a listen-only token cannot speak, a good token streams as usual."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ingest.auth import mint_token
from ingest.options import AuthOptions
from streamscribe.benchmarks.metrics import normalize
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up

pytestmark = pytest.mark.e2e

SECRET = "test-signing-secret-of-enough-length-0123456789"
AUTH = AuthOptions(SECRET)


@pytest.fixture(scope="module")
def guarded() -> Iterator[RunningPipeline]:
    running = start_up(
        free_port(),
        transcribers=1,
        env={"STREAMSCRIBE_AUTH": "on", "STREAMSCRIBE_TOKEN_SECRET": SECRET},
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
