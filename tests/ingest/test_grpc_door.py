"""The gRPC door and a call as a session's wire, over real loopback sockets.

Each test serves calls with a scripted session (``serve_call``) and drives them with
grpcio's blocking client in a thread (its asyncio client can misreport a status that comes
while it is still writing: grpc/grpc#36066).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed

from ingest.grpc_door import GrpcDoor
from ingest.grpc_wire import GrpcWire
from ingest.protocol import MessageBuilder
from shared.grpc_api import transcription_pb2 as pb

Serve = Callable[[GrpcWire, Headers], Awaitable[None]]


def _call(
    port: int, requests: Iterator[pb.StreamRequest], *, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[list[pb.StreamResponse], grpc.StatusCode, str, dict[str, Any]]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = channel.stream_stream(
            "/streamscribe.v1.Transcription/Stream",
            request_serializer=pb.StreamRequest.SerializeToString,
            response_deserializer=pb.StreamResponse.FromString,
        )
        call = stream(requests, metadata=metadata)
        responses: list[pb.StreamResponse] = []
        with contextlib.suppress(grpc.RpcError):
            responses.extend(call)
        return responses, call.code(), call.details() or "", dict(call.trailing_metadata() or ())


def with_door(
    serve: Serve,
    client: Callable[[int], Any],
    *,
    readiness: Callable[[], str | None] = lambda: None,
) -> Any:
    """Serves calls with ``serve`` while ``client(port)`` runs in a thread; its result."""

    async def run() -> Any:
        door = GrpcDoor(serve, readiness=readiness, host="127.0.0.1", port=0, max_audio_bytes=4096)
        await door.start()
        try:
            return await asyncio.wait_for(asyncio.to_thread(client, door.port), 30)
        finally:
            await door.stop(1)

    return asyncio.run(run())


def _config_then(
    *more: pb.StreamRequest, hold: threading.Event | None = None
) -> Iterator[pb.StreamRequest]:
    yield pb.StreamRequest(config=pb.StreamConfig(room="7"))
    yield from more
    if hold is not None:
        hold.wait(10)


def test_a_session_s_messages_then_ok() -> None:
    seen: list[str | bytes] = []

    async def serve(wire: GrpcWire, headers: Headers) -> None:
        config = await wire.config()
        assert config is not None and config.room == "7"
        assert headers.get("authorization") == "Bearer abc"
        build = MessageBuilder("s1")
        await wire.send(build.error("translation_unavailable", "no translator"))
        while (frame := await wire.recv()) != '{"type":"close"}':
            seen.append(frame)
            await wire.send(build.session_end(1.0, 0))
        seen.append(frame)
        await wire.close(1000, "session ended")

    requests = _config_then(
        pb.StreamRequest(audio=b"\x00\x01"), pb.StreamRequest(finalize=pb.Finalize())
    )
    responses, status, _, trailing = with_door(
        serve, lambda port: _call(port, requests, metadata=(("authorization", "Bearer abc"),))
    )
    assert seen == [b"\x00\x01", '{"type":"finalize"}', '{"type":"close"}']
    assert [r.WhichOneof("message") for r in responses] == ["error", "session_end", "session_end"]
    assert responses[0].error.code == "translation_unavailable"
    assert status is grpc.StatusCode.OK and trailing == {"streamscribe-close-code": "1000"}


def test_an_error_that_ends_the_session_is_the_call_s_status() -> None:
    async def serve(wire: GrpcWire, headers: Headers) -> None:
        await wire.config()
        build = MessageBuilder("s1")
        await wire.send(build.session_end(0.0, 0))
        await wire.send(build.error("invalid_parameter", "sample_rate: must be 8000-48000"))
        await wire.close(4400, "sample_rate: must be")

    responses, status, details, trailing = with_door(
        serve, lambda port: _call(port, _config_then())
    )
    assert [r.WhichOneof("message") for r in responses] == ["session_end"]
    assert (status, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "sample_rate: must be 8000-48000",
    )
    assert trailing == {
        "streamscribe-close-code": "4400",
        "streamscribe-error": "invalid_parameter",
    }


def test_an_error_the_session_outlives_is_sent_at_once() -> None:
    got_it = threading.Event()
    released = asyncio.Event()

    async def serve(wire: GrpcWire, headers: Headers) -> None:
        await wire.config()
        await wire.send(MessageBuilder("s1").error("transcription_failed", "no"))
        await asyncio.to_thread(got_it.wait, 10)
        released.set()
        await wire.close(1000)

    def client(port: int) -> Any:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = channel.stream_stream(
                "/streamscribe.v1.Transcription/Stream",
                request_serializer=pb.StreamRequest.SerializeToString,
                response_deserializer=pb.StreamResponse.FromString,
            )
            call = stream(_config_then(hold=threading.Event()))
            first = next(call)
            got_it.set()  # the session is still open: the error came on its own
            rest = list(call)
            return first, rest, call.code()

    first, rest, status = with_door(serve, client)
    assert first.error.code == "transcription_failed"
    assert rest == [] and status is grpc.StatusCode.OK


def test_ending_the_requests_closes_the_audio_then_waits_for_the_close() -> None:
    frames: list[str | bytes] = []

    async def serve(wire: GrpcWire, headers: Headers) -> None:
        await wire.config()
        frames.append(await wire.recv())
        waiting = asyncio.ensure_future(wire.recv())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # nothing comes after the end of the requests
        await wire.close(1000)
        with pytest.raises(ConnectionClosed):
            await waiting
        frames.append("closed")

    _, status, _, _ = with_door(serve, lambda port: _call(port, _config_then()))
    assert frames == ['{"type":"close"}', "closed"] and status is grpc.StatusCode.OK


def test_a_cancelled_call_ends_its_session_in_order() -> None:
    ended = threading.Event()

    async def serve(wire: GrpcWire, headers: Headers) -> None:
        await wire.config()
        await wire.send(MessageBuilder("s1").session_end(0.0, 0))
        try:
            while True:
                await wire.recv()
        except ConnectionClosed:
            with pytest.raises(ConnectionClosed):
                await wire.send(MessageBuilder("s1").session_end(0.0, 0))
            ended.set()

    def client(port: int) -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = channel.stream_stream(
                "/streamscribe.v1.Transcription/Stream",
                request_serializer=pb.StreamRequest.SerializeToString,
                response_deserializer=pb.StreamResponse.FromString,
            )
            call = stream(_config_then(hold=threading.Event()))
            next(call)
            call.cancel()
            return ended.wait(10)

    assert with_door(serve, client) is True


def test_a_call_that_sends_no_config_is_none() -> None:
    configs: list[object] = []

    async def serve(wire: GrpcWire, headers: Headers) -> None:
        configs.append(await wire.config())

    _, status, _, _ = with_door(serve, lambda port: _call(port, iter(())))
    assert configs == [None] and status is grpc.StatusCode.OK


def test_a_request_over_the_limit_is_refused_by_grpc() -> None:
    async def serve(wire: GrpcWire, headers: Headers) -> None:
        await wire.config()
        await wire.recv()

    big = pb.StreamRequest(audio=bytes(4096 + 2048))
    _, status, _, _ = with_door(serve, lambda port: _call(port, _config_then(big)))
    assert status is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_health_follows_readiness() -> None:
    why: list[str | None] = [None]

    async def serve(wire: GrpcWire, headers: Headers) -> None:
        raise AssertionError("no calls")

    def client(port: int) -> list[Any]:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answers: list[Any] = []
            for service in ("", "streamscribe.v1.Transcription"):
                answers.append(health.Check(health_pb2.HealthCheckRequest(service=service)).status)
            why[0] = "no transcriber is ready"
            answers.append(health.Check(health_pb2.HealthCheckRequest()).status)
            try:
                health.Check(health_pb2.HealthCheckRequest(service="x.Y"))
            except grpc.RpcError as exc:
                answers.append(exc.code())
            return answers

    answers = with_door(serve, client, readiness=lambda: why[0])
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    assert answers == [serving, serving, not_serving, grpc.StatusCode.NOT_FOUND]
