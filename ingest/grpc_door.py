"""gRPC on a port of its own (gRPC is HTTP/2): ``streamscribe.v1.Transcription/Stream`` and
the standard health service (``grpc.health.v1.Health``).

Each call is a session served like a WebSocket's (the ``serve_call`` it is given), run in a
task of its own so that a client's cancelling the call ends the session in order instead of
cutting it off mid-write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.datastructures import Headers

from ingest import logger
from ingest.grpc_wire import Context, GrpcWire
from shared.grpc_api import transcription_pb2 as pb

SERVICE = "streamscribe.v1.Transcription"
CANCELLED_WAIT_S = 10.0
"""How long a cancelled call's session may take to end in order."""
WATCH_EVERY_S = 1.0
"""How often a health ``Watch`` looks again at whether the node is ready."""
MESSAGE_OVERHEAD_BYTES = 1024
"""A request may be this much larger than the largest audio frame it carries."""

ServeCall = Callable[[GrpcWire, Headers], Awaitable[None]]


class ReadinessHealth(health_pb2_grpc.HealthServicer):
    """``SERVING`` while ``readiness()`` finds nothing wrong, for the server (``""``) and the
    transcription service; ``NOT_FOUND`` for any other service."""

    def __init__(self, readiness: Callable[[], str | None]) -> None:
        self._readiness = readiness

    def _status(self, service: str) -> int:
        if self._readiness() is None:
            return health_pb2.HealthCheckResponse.SERVING
        return health_pb2.HealthCheckResponse.NOT_SERVING

    async def Check(
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ],
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in ("", SERVICE):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=self._status(request.service))

    async def Watch(
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ],
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        known = request.service in ("", SERVICE)
        last = None
        while True:
            status = (
                self._status(request.service)
                if known
                else health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            )
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            await asyncio.sleep(WATCH_EVERY_S)


class GrpcDoor:
    def __init__(
        self,
        serve_call: ServeCall,
        *,
        readiness: Callable[[], str | None],
        host: str,
        port: int,
        max_audio_bytes: int,
    ) -> None:
        self._serve_call = serve_call
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_audio_bytes + MESSAGE_OVERHEAD_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        stream = grpc.stream_stream_rpc_method_handler(
            self._stream,
            request_deserializer=pb.StreamRequest.FromString,
            response_serializer=pb.StreamResponse.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Stream": stream}),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(ReadinessHealth(readiness), self._server)
        self.port = self._server.add_insecure_port(f"{_grpc_host(host)}:{port}")

    async def start(self) -> None:
        await self._server.start()
        logger.info("gRPC listening on port %d", self.port)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Refuses new calls and gives the ones in progress ``grace_s`` to end."""
        await self._server.stop(grace_s)

    async def _stream(self, requests: object, context: Context) -> None:
        wire = GrpcWire(context)
        headers = Headers(
            (key, value)
            for key, value in context.invocation_metadata() or ()
            if isinstance(value, str)
        )
        session = asyncio.ensure_future(self._serve_call(wire, headers))
        try:
            await asyncio.shield(session)
        except asyncio.CancelledError:
            wire.gone()
            await asyncio.wait({session}, timeout=CANCELLED_WAIT_S)
            raise
        finally:
            wire.release()


def _grpc_host(host: str) -> str:
    """A listen address as gRPC writes it (an IPv6 literal in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
