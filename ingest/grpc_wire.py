"""A gRPC call (``Transcription.Stream``) as a session's :class:`~ingest.wire.Wire`.

Requests become the v1 frames they stand for (``ingest.grpc_messages``); the session's v1
messages are written as typed responses. An error message followed by the session's close
becomes the call's status (its text in the details, its codes in the trailing metadata)
instead of a response; one that does not end the session is written as a response. There
is nothing to ping over a call: what was written is taken as confirmed (gRPC sessions are
not resumable, so the outbox has nothing to keep for a later connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from websockets.exceptions import ConnectionClosed

from ingest import logger
from ingest.grpc_messages import CLOSE_FRAME, first_config, frame_of, response_of, status_of
from ingest.protocol import CLOSE_NORMAL
from shared.client_messages import Error, decode
from shared.grpc_api import transcription_pb2 as pb

CLOSE_CODE_KEY = "streamscribe-close-code"
ERROR_CODE_KEY = "streamscribe-error"

Context = grpc.aio.ServicerContext[pb.StreamRequest, pb.StreamResponse]


class GrpcWire:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._closed = asyncio.Event()
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done with ``_closed``: what a read in progress waits on beside the read."""
        self._close_code: int | None = None
        self._reading: asyncio.Task[object] | None = None
        self._input_ended = False
        self._writing = asyncio.Lock()
        self._error: Error | None = None
        """An error message held back: the call's status if the session closes next."""

    @property
    def close_code(self) -> int | None:
        return self._close_code

    def gone(self) -> None:
        """The client cancelled the call, or it ended: nothing more is read or written."""
        self._closed.set()
        if not self._gone.done():
            self._gone.set_result(None)

    async def config(self) -> pb.StreamConfig | None:
        """The call's first request, its config (None: the client ended the call first)."""
        request = await self._read()
        if request is None:
            return None
        return first_config(request)

    async def recv(self) -> str | bytes:
        if self._input_ended:  # the client sent all it will; nothing comes until the close
            await self._closed.wait()
            raise ConnectionClosed(None, None)
        request = await self._read()
        if request is None:
            self._input_ended = True
            return CLOSE_FRAME
        return frame_of(request)

    async def _read(self) -> pb.StreamRequest | None:
        """The next request, None at the end of the client's requests."""
        if self._closed.is_set():
            raise ConnectionClosed(None, None)
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._context.read())
        either: set[asyncio.Future[Any]] = {self._reading, self._gone}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not self._reading.done():
            raise ConnectionClosed(None, None)
        reading, self._reading = self._reading, None
        request = reading.result()
        if request is grpc.aio.EOF:
            return None
        assert isinstance(request, pb.StreamRequest)
        return request

    async def send(self, message: str) -> None:
        if self._closed.is_set():
            raise ConnectionClosed(None, None)
        decoded = decode(message)
        await self._write_held()
        if isinstance(decoded, Error):
            self._error = decoded
            # written unless the session closes before this task next waits
            asyncio.get_running_loop().call_soon(self._write_held_soon)
            return
        await self._write(response_of(decoded))

    def _write_held_soon(self) -> None:
        if self._error is not None and not self._closed.is_set():
            task = asyncio.ensure_future(self._write_held())
            task.add_done_callback(_ignore_closed)

    async def _write_held(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            await self._write(response_of(error))

    async def _write(self, response: pb.StreamResponse) -> None:
        async with self._writing:
            if self._closed.is_set():
                raise ConnectionClosed(None, None)
            try:
                await self._context.write(response)
            except (asyncio.InvalidStateError, grpc.aio.AbortError, grpc.RpcError):
                self.gone()
                raise ConnectionClosed(None, None) from None

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed.is_set():
            return
        error, self._error = self._error, None
        if error is not None and code == CLOSE_NORMAL:
            with contextlib.suppress(ConnectionClosed):
                await self._write(response_of(error))
        metadata = [(CLOSE_CODE_KEY, str(code))]
        if error is not None and code != CLOSE_NORMAL:
            metadata.append((ERROR_CODE_KEY, error.code))
            reason = error.message
        self._context.set_code(status_of(code))
        self._context.set_details(reason)
        self._context.set_trailing_metadata(tuple(metadata))
        self._close_code = code
        self.gone()

    async def ping(self) -> asyncio.Future[float]:
        confirmed: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        confirmed.set_result(0.0)
        return confirmed

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def release(self) -> None:
        """Stops the read in progress, if any (the call is over)."""
        if self._reading is not None:
            self._reading.cancel()


def _ignore_closed(task: asyncio.Task[None]) -> None:
    failure = None if task.cancelled() else task.exception()
    if failure is not None and not isinstance(failure, ConnectionClosed):
        logger.error("could not write a held error message", exc_info=failure)
