"""The ingest node's I/O shell: WebSocket server, health endpoint, Redis tasks."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from ingest import logger
from ingest.connection import ClientConnection
from ingest.protocol import MessageBuilder, parse_stream_params
from ingest.redis_io import EventRelay, RedisWriter
from ingest.rooms import RoomMembership
from ingest.static_files import StaticFiles
from ingest.translations import TranslationQueue
from shared import keys
from shared.errors import ProtocolError
from shared.redis_client import connect_async
from shared.schema import SessionOpened
from shared.settings import IngestOptions

STREAM_PATH = "/v1/stream"


class IngestServer:
    def __init__(self, options: IngestOptions, redis_url: str) -> None:
        self.options = options
        self._redis = connect_async(redis_url)
        self._writer = RedisWriter(self._redis)
        node = f"{socket.gethostname()}-{os.getpid()}"
        self._relay = EventRelay(self._redis, f"ss:ingest:{node}")
        self._stop = asyncio.Event()
        self._server: Server | None = None
        self._static = StaticFiles()
        self._translations = TranslationQueue(redis_url, options.translation_queue)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._stop.set()

    async def serve(self, started: asyncio.Event | None = None) -> None:
        await self._relay.start()
        async with asyncio.TaskGroup() as tasks:
            writer = tasks.create_task(self._writer.run())
            relay = tasks.create_task(self._relay.run())
            async with serve(
                self._handle,
                self.options.host,
                self.options.port,
                process_request=self._http,
                max_size=self.options.max_frame_bytes * 4,
                ping_interval=20,
                ping_timeout=20,
                close_timeout=5,
            ) as server:
                self._server = server
                logger.info("ingest listening on %s:%d", self.options.host, self.port)
                if started is not None:
                    started.set()
                await self._stop.wait()
            writer.cancel()
            relay.cancel()
        await self._relay.close()
        await self._redis.aclose()
        self._translations.close()

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == STREAM_PATH:
            return None
        page = self._static.response(path)
        if page is not None:
            return page
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def _handle(self, ws: ServerConnection) -> None:
        session_id = "s" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
        query = parse_qs(
            urlsplit(ws.request.path if ws.request else "").query, keep_blank_values=True
        )
        try:
            params = parse_stream_params(query, english_only=self.options.english_only)
        except ProtocolError as exc:
            await ws.send(MessageBuilder(session_id).error(exc.code, exc.message))
            await ws.close(exc.close_code, exc.message[:120])
            return
        client = ClientConnection(
            ws, session_id, params, self.options, self._writer, translations=self._translations
        )
        channel = keys.session_channel(session_id)
        await self._relay.subscribe(channel, session_id, client.on_event)
        sender = asyncio.create_task(client.send_loop())
        try:
            if not params.listen:
                opened = SessionOpened(session_id, params.language, params.partials, time.time())
                await self._writer.open_session(opened)
            client.send_text(client.messages.session_begin(params, self.options.model_name))
            if params.room is not None:
                membership = RoomMembership(
                    self._redis, self._writer, self._relay, params.room, client.speaker
                )
                await client.join_room(membership)
            await client.receive_loop()
            if client.close_enqueued:
                await asyncio.wait_for(sender, timeout=30)
        finally:
            sender.cancel()
            if client.room is not None:
                await client.room.leave()
            await self._relay.unsubscribe(channel, session_id)
