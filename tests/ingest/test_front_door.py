"""One port, two HTTP libraries: the request line decides, over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

import ingest.front_door
from ingest.front_door import (
    ConnectionGate,
    HttpDoor,
    RefusalLog,
    for_http_door,
    sorting_connection,
)


@pytest.mark.parametrize(
    ("head", "door"),
    [
        (b"POST /v1/audio/transcriptions HTTP/1.1\r\n", True),
        (b"GET /v1/audio/translations?x=1 HTTP/1.1\r\n", True),
        (b"POST /healthz HTTP/1.1\r\n", False),
        (b"GET /v1/stream HTTP/1.1\r\nHost: a\r\n", False),
        (b"GET /v1/audio HTTP/1.1\r\n", False),
        (b"garbage\r\n", False),
    ],
)
def test_the_audio_api_is_known_by_its_path(head: bytes, door: bool) -> None:
    assert for_http_door(head) is door


async def _upload(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"starlette got {len(body)} bytes")


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def _health(connection: ServerConnection, request: WsRequest) -> WsResponse | None:
    if request.path == "/healthz":
        if request.method != "GET":
            return connection.respond(405, "only GET\n")
        return connection.respond(200, "ok\n")
    return None


def with_door(
    scenario: Callable[[int], Awaitable[None]], gate: ConnectionGate | None = None
) -> None:
    """Runs ``scenario(port)`` against websockets serving with the front door."""

    async def run() -> None:
        app = Starlette(routes=[Route("/v1/audio/transcriptions", _upload, methods=["POST"])])
        http = HttpDoor(app)
        async with serve(
            _echo, "127.0.0.1", 0, process_request=_health,
            create_connection=sorting_connection(http.protocol, gate),
        ) as server:  # fmt: skip
            await scenario(server.sockets[0].getsockname()[1])
            await http.close()

    asyncio.run(run())


async def _exchange(port: int, *pieces: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.02)
    answer = await asyncio.wait_for(reader.read(), 10)  # to the close: it may come in pieces
    writer.close()
    return answer


def test_a_post_to_the_audio_api_reaches_the_asgi_app() -> None:
    with_door(_post)


async def _post(port: int) -> None:
    body = b"x" * 5000
    request = (
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    answer = await _exchange(port, request[:3], request[3:20], request[20:])  # split anywhere
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"starlette got 5000 bytes")


def test_get_stays_with_websockets() -> None:
    with_door(_gets)


async def _gets(port: int) -> None:
    answer = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n")
    refused = await _exchange(
        port, b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    )
    assert refused.startswith(b"HTTP/1.1 405")
    async with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"


def test_the_wrong_method_on_the_audio_api_is_starlettes_405() -> None:
    with_door(_wrong_method)


async def _wrong_method(port: int) -> None:
    answer = await _exchange(
        port, b"GET /v1/audio/transcriptions HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 405")


def test_a_connection_that_says_nothing_or_leaves_breaks_nothing() -> None:
    with_door(_leavers)


async def _leavers(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as quiet:
        quiet.sendall(b"PO")  # leaves mid-method
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()  # leaves before a byte
    answer = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")


def test_the_gate_counts_per_node_and_per_address() -> None:
    gate = ConnectionGate(per_node=3, per_address=2)
    assert gate.admit("a") and gate.admit("a") and not gate.admit("a")
    assert gate.admit("b") and not gate.admit("c")  # the node is full
    gate.release("a")
    assert gate.admit("c") and gate.refused == 2 and gate.open == 3


def test_refusals_are_logged_once_a_period(caplog: pytest.LogCaptureFixture) -> None:
    gate, log = ConnectionGate(per_node=1, per_address=1), RefusalLog(every_s=60)
    for i in range(1000):
        log.refused(gate, "10.0.0.1", now=i / 100)
    log.refused(gate, "10.0.0.1", now=61.0)
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 2 and lines[1].startswith("refused 1000 connection(s)")


def test_connections_past_the_caps_are_dropped_and_counted_back() -> None:
    gate = ConnectionGate(per_node=100, per_address=3)

    async def scenario(port: int) -> None:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert gate.open == 3
        reader, _ = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # dropped at once
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.2)
        assert gate.open == 0
        answer = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.1)
        assert gate.open == 0 and gate.refused == 1

    with_door(scenario, gate)


def test_an_upload_whose_headers_trickle_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest.front_door, "HEAD_TIMEOUT_S", 0.5)
    gate = ConnectionGate(per_node=10, per_address=10)

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: a\r\n")
        with contextlib.suppress(ConnectionError):  # the server may be gone by the 2nd line
            for _ in range(3):
                await asyncio.sleep(0.3)
                writer.write(b"X-Slow: 1\r\n")
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await asyncio.sleep(0.1)
        assert gate.open == 0
        done = await _exchange(
            port,
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
            b"abc",
        )
        assert b"starlette got 3 bytes" in done

    with_door(scenario, gate)
