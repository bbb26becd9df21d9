"""The ingest node's I/O shell: WebSocket server, health endpoint, Redis tasks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import redis
from prometheus_client import CollectorRegistry
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed

from ingest import logger
from ingest.auth import bearer_token, check_room, verify_token
from ingest.connection import LOST_REDIS, ClientConnection, discard_incoming
from ingest.deepgram import (
    LISTEN_PATH,
    DeepgramFace,
    ListenOptions,
    parse_listen_request,
)
from ingest.faces import Face, FaceInput, GrpcFace, StreamFace
from ingest.front_door import HttpDoor, connection_gate, sorting_connection
from ingest.grpc_door import GrpcDoor
from ingest.grpc_messages import config_query
from ingest.grpc_wire import GrpcWire
from ingest.handshake import Handshake
from ingest.limits import CLOSE_TIMEOUT, overloaded, session_timeout, unavailable
from ingest.metrics import IngestMetrics
from ingest.openai_http import AudioApiOptions, audio_app
from ingest.options import IngestOptions
from ingest.protocol import (
    CLOSE_INTERNAL,
    MessageBuilder,
    StreamParams,
    parse_stream_params,
)
from ingest.realtime import REALTIME_PATH, RealtimeFace, parse_realtime_request
from ingest.redis_io import EventRelay, RedisWriter
from ingest.resume_record import ResumableSession
from ingest.rooms import RoomMembership, ensure_room_space
from ingest.session_link import (
    Hold,
    ResumePoint,
    SessionLink,
    results_log,
    resume_failed,
    session_of_token,
)
from ingest.translations import TranslationQueue
from ingest.upload_jobs import UploadQueue
from ingest.wire import Wire
from shared import keys
from shared.addresses import process_name, url_host
from shared.audio import Encoding
from shared.cloudwatch import CloudWatchReporter
from shared.errors import ProtocolError, SchemaError
from shared.observability import Heartbeat, PartLoad, live_parts
from shared.redis_client import connect, connect_async
from shared.resilience import REDIS_DOWN, Delays
from shared.schema import SessionOpened, decode_event

RENEW_EVERY_S = 2.0
MIN_ATTACHMENT_S = 10
"""With resuming off, a session still lapses this long after its node stopped renewing it."""
NODE_FAILED = "this server failed and is restarting; reconnect to resume"
CLOSE_SEND_TIMEOUT_S = 30.0
"""How long a session's last messages may take to be read before its client is dropped."""
CLOSE_POLICY_VIOLATION = 1008
REALTIME_SETUP_EVENTS = 100
"""Client events a Realtime session may send before its first audio."""


class IngestServer:
    def __init__(
        self,
        options: IngestOptions,
        redis_url: str,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.options = options
        self._registry = registry or CollectorRegistry()
        self.metrics = IngestMetrics(self._registry)
        self._redis_url = redis_url
        self._redis = connect_async(redis_url)
        self._writer = RedisWriter(
            self._redis, on_lost=self._redis_lost, on_hold_lost=self._hold_lost
        )
        node = process_name()
        self._relay = EventRelay(self._redis, f"ss:ingest:{node}", on_lost=self._redis_lost)
        self._clients: dict[str, ClientConnection] = {}
        self._redis_ok = True
        self._recovery: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._server: Server | None = None
        self.grpc_port: int | None = None
        """The gRPC API's port once serving (None: no gRPC)."""
        self._handshake = Handshake(
            options,
            authorize=self._authorize,
            registry=self._registry,
            readiness=self._readiness,
            metrics=self.metrics,
        )
        self._translations = TranslationQueue(redis_url, options.translation_queue)
        self._connected = 0
        self._configuring = 0
        """Realtime clients configuring their session (not yet connected); they count
        against ``max_sessions`` too."""
        self._heartbeat: Heartbeat | None = None
        self._transcribers_ready = False
        self._file_transcribers_ready = False
        """Whether a transcriber's heartbeat was live at this node's last beat."""
        self._background: tuple[asyncio.Task[None], ...] = ()
        api = AudioApiOptions(
            options.model_name, options.english_only, options.auth, options.allowed_hosts
        )
        self._gate = connection_gate(options.limits)
        self._http_door = HttpDoor(
            audio_app(
                api,
                UploadQueue(self._redis, options.uploads),
                readiness=self._upload_readiness,
                on_upload=self.metrics.upload_done,
            )
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._stop.set()

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Serves until ``stop``. Should the writer, the relay or the renewer fail, the node
        closes every connection and this raises, so the process exits and is restarted
        (``up``, ECS) instead of living on serving nothing."""
        await self._relay.start()
        heartbeat: Heartbeat | None = None
        try:
            async with asyncio.TaskGroup() as tasks:
                self._background = (
                    tasks.create_task(self._writer.run(), name="redis writer"),
                    tasks.create_task(self._relay.run(), name="event relay"),
                    tasks.create_task(self._renew_links(), name="session renewer"),
                )
                for task in self._background:
                    task.add_done_callback(self._background_ended)
                async with serve(
                    self._handle,
                    self.options.host,
                    self.options.port,
                    process_request=self._handshake,
                    create_connection=sorting_connection(self._http_door.protocol, self._gate),
                    max_size=self.options.max_frame_bytes * 4,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=5,
                ) as server:
                    self._server = server
                    logger.info("ingest listening on %s:%d", self.options.host, self.port)
                    grpc_door = await self._start_grpc()
                    heartbeat = self._start_heartbeat()
                    if started is not None:
                        started.set()
                    await self._stop.wait()
                    if grpc_door is not None:
                        await grpc_door.stop()
                    await self._http_door.close()
                for task in self._background:
                    task.cancel()
        finally:
            if heartbeat is not None:
                await asyncio.to_thread(heartbeat.stop)
            await self._relay.close()
            await self._redis.aclose()
            self._translations.close()

    async def _start_grpc(self) -> GrpcDoor | None:
        if self.options.grpc_port is None:
            return None
        door = GrpcDoor(
            self._serve_grpc,
            readiness=self._readiness,
            host=self.options.host,
            port=self.options.grpc_port,
            max_audio_bytes=self.options.max_frame_bytes,
        )
        await door.start()
        self.grpc_port = door.port
        return door

    def _background_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():  # stopped on purpose
            return
        logger.critical(
            "the %s stopped; closing every connection and exiting",
            task.get_name(),
            exc_info=task.exception(),
        )
        for client in list(self._clients.values()):
            client.end_with_error("unavailable", NODE_FAILED, CLOSE_INTERNAL)

    def _redis_lost(self) -> None:
        """Every session's state may be gone with Redis: end them with a clear error rather
        than let them hang; refuse new ones (1013) until Redis answers again."""
        if not self._redis_ok:
            return
        self._redis_ok = False
        self.metrics.redis_errors.inc()
        logger.error("lost Redis: ending %d sessions", len(self._clients))
        for client in list(self._clients.values()):
            client.end_with_error("unavailable", LOST_REDIS, CLOSE_INTERNAL)
        self._recovery = asyncio.get_running_loop().create_task(self._await_redis())

    async def _await_redis(self) -> None:
        delays = Delays()
        while True:
            await asyncio.sleep(delays.next())  # backoff between reconnection attempts
            try:
                await self._redis.ping()
            except REDIS_DOWN:
                continue
            # Idle connections opened before the loss are dead; none may serve a new session
            # (the pub/sub connection in use reconnects by itself).
            await self._redis.connection_pool.disconnect(inuse_connections=False)
            logger.info("Redis is back; accepting sessions")
            self._redis_ok = True
            return

    def _readiness(self) -> str | None:
        """Why a stream opened now would not be transcribed (None: it would)."""
        if not self.ready:
            return "redis is not answering"
        if not self._transcribers_ready:
            return "no transcriber is ready (its model may still be loading)"
        return None

    def _upload_readiness(self) -> str | None:
        """Why an upload sent now would not be transcribed (None: it would)."""
        if not self.ready:
            return "redis is not answering"
        if not self._file_transcribers_ready:
            return "no transcriber for uploads is ready (its model may still be loading)"
        return None

    @property
    def ready(self) -> bool:
        serving = bool(self._background) and not any(t.done() for t in self._background)
        return (
            serving and self._redis_ok and self._heartbeat is not None and self._heartbeat.redis_ok
        )

    def _see_transcribers(self, client: redis.Redis) -> None:
        ready = [p for p in live_parts(client) if p.kind == "transcriber" and p.ready]
        self._transcribers_ready = any(p.jobs != "files" for p in ready)
        self._file_transcribers_ready = any(p.jobs != "live" for p in ready)

    def _authorize(self, headers: Headers | None, token: str | None, room: str | None) -> bool:
        """Checks the token when auth is on; whether the client may send audio."""
        if self.options.auth is None:
            return True
        # several Authorization headers are joined, and then no valid token (4001)
        authorization = ", ".join(headers.get_all("Authorization")) if headers else None
        bearer = bearer_token(token, authorization or None)
        grant = verify_token(bearer, self.options.auth)
        check_room(grant, room)
        return grant.may_speak

    async def _admit(self, headers: Headers | None, token: str | None, room: str | None) -> bool:
        """A new session's token checked and its room's space; whether it may send audio."""
        may_speak = self._authorize(headers, token, room)
        if room is not None:
            await ensure_room_space(self._redis, room, self.options.limits.max_room_participants)
        return may_speak

    def _start_heartbeat(self) -> Heartbeat:
        self._heartbeat = Heartbeat(
            connect(self._redis_url),
            "ingest",
            load=lambda: PartLoad(sessions=self._connected),
            metrics=self.metrics,
            metrics_url=f"http://{url_host(self.options.host)}:{self.port}/metrics",
            also=self.metrics.flush_samples,
            observe=self._see_transcribers,
            reporter=CloudWatchReporter(
                self.options.cloudwatch_namespace, "ingest", lambda: {"Sessions": self._connected}
            )
            if self.options.cloudwatch_namespace
            else None,
        )
        return self._heartbeat.start()

    def _full(self) -> ProtocolError | None:
        """Why no session may open now (None: one may)."""
        if not self._redis_ok:
            return unavailable()
        if self._connected + self._configuring >= self.options.limits.max_sessions:
            return overloaded()
        return None

    async def _refuse(self, ws: Wire, session_id: str, error: ProtocolError, face: Face) -> None:
        self.metrics.closes.labels(str(error.close_code)).inc()
        await _refuse(ws, session_id, error, face)

    async def _handle(self, ws: ServerConnection) -> None:
        refusal_id = _new_session_id()
        url = urlsplit(ws.request.path if ws.request else "")
        face: Face = StreamFace()
        if url.path == LISTEN_PATH:
            face = DeepgramFace(ListenOptions(), request_id=refusal_id)
        full = self._full()
        if full is not None:
            await self._refuse(ws, refusal_id, full, face)
            return
        query = parse_qs(url.query, keep_blank_values=True)
        headers = ws.request.headers if ws.request else None
        try:
            first: FaceInput | None = None
            if url.path == LISTEN_PATH:
                params, listen = parse_listen_request(query, english_only=self.options.english_only)
                face = DeepgramFace(listen, request_id=refusal_id)
            elif url.path == REALTIME_PATH:
                face, params = self._realtime_face(refusal_id, query)
            else:
                params = parse_stream_params(query, english_only=self.options.english_only)
            if params.resume is None:
                may_speak = await self._admit(headers, params.token, params.room)
                if isinstance(face, RealtimeFace):
                    self._configuring += 1
                    try:
                        first = await self._configure_realtime(ws, face)
                    finally:
                        self._configuring -= 1
                    if first is None:
                        return
                    params = self._realtime_params(face, params)
                start = Start(params, may_speak, self._link(refusal_id), None, face, first)
            else:
                start = await self._resume(ws, params)
        except ProtocolError as exc:
            await self._refuse(ws, refusal_id, exc, face)
            return
        except REDIS_DOWN:
            await self._refuse(ws, refusal_id, unavailable(), face)
            return
        await self._serve_client(ws, start)

    async def _serve_grpc(self, wire: GrpcWire, headers: Headers) -> None:
        """A gRPC call: its config, then a session as ``/v1/stream`` would have it (its
        token in the call's ``authorization`` metadata; never resumed)."""
        session_id = _new_session_id()
        face = GrpcFace()
        full = self._full()
        if full is not None:
            await self._refuse(wire, session_id, full, face)
            return
        try:
            self._configuring += 1
            try:
                async with asyncio.timeout(self.options.limits.idle_timeout_s):
                    config = await wire.config()
            except TimeoutError:
                raise session_timeout(
                    self.options.limits.idle_timeout_s, self.options.limits
                ) from None
            finally:
                self._configuring -= 1
            if config is None:
                return
            params = parse_stream_params(
                config_query(config), english_only=self.options.english_only
            )
            may_speak = await self._admit(headers, None, params.room)
        except ProtocolError as exc:
            await self._refuse(wire, session_id, exc, face)
            return
        except REDIS_DOWN:
            await self._refuse(wire, session_id, unavailable(), face)
            return
        with contextlib.suppress(ConnectionClosed):
            await self._serve_client(
                wire, Start(params, may_speak, self._link(session_id), None, face)
            )

    def _realtime_face(
        self, session_id: str, query: dict[str, list[str]]
    ) -> tuple[RealtimeFace, StreamParams]:
        asked = parse_realtime_request(query)
        face = RealtimeFace(
            session_id,
            english_only=self.options.english_only,
            hold_after_gap_s=self.options.realtime_hold_after_gap_s,
            max_audio_bytes=self.options.max_frame_bytes,
            model=asked.model,
        )
        return face, self._realtime_params(face, None, asked.ours)

    def _realtime_params(
        self, face: RealtimeFace, before: StreamParams | None, ours: dict[str, str] | None = None
    ) -> StreamParams:
        """The session's parameters from the face's configuration (and ``room``, ``name``,
        ``token`` from the query string, or from ``before``)."""
        if ours is None:
            assert before is not None
            ours = {"name": before.name}
            if before.room is not None:
                ours["room"] = before.room
        query = {k: [v] for k, v in {**face.stream_query(), **ours}.items()}
        params = parse_stream_params(query, english_only=self.options.english_only)
        token = before.token if before is not None else params.token
        return dataclasses.replace(params, vocabulary=face.config.vocabulary, token=token)

    async def _configure_realtime(
        self, ws: ServerConnection, face: RealtimeFace
    ) -> FaceInput | None:
        """``session.created``, then the client's configuration until its first audio (what
        it read, to be sent on); None when the client left or stayed silent."""
        try:
            await ws.send(face.greeting())
            for _ in range(REALTIME_SETUP_EVENTS):
                async with asyncio.timeout(self.options.limits.idle_timeout_s):
                    frame = await ws.recv()
                got = face.first_audio(frame) if isinstance(frame, bytes) else face.read(frame)
                if got.begins:
                    return got
                for reply in got.replies:
                    await ws.send(reply)
            await ws.close(CLOSE_POLICY_VIOLATION, "too many events before the first audio")
        except TimeoutError:
            await ws.close(CLOSE_TIMEOUT, "nothing received")
        except ConnectionClosed:
            pass
        return None

    def _link(self, session_id: str) -> SessionLink:
        window = max(self.options.resume_window_s, MIN_ATTACHMENT_S)
        return SessionLink(self._redis, session_id, window_s=window)

    async def _resume(self, ws: ServerConnection, asked: StreamParams) -> Start:
        """The session the resume token names, taken over from its last connection."""
        assert asked.resume is not None
        if self.options.resume_window_s == 0:
            raise resume_failed("resuming is turned off on this server")
        link = self._link(session_of_token(asked.resume))
        record = await link.check_token(asked.resume)
        headers = ws.request.headers if ws.request else None
        may_speak = self._authorize(headers, asked.token, record.room) and record.may_speak
        point = await link.take_over(asked.last_seq)
        params = StreamParams(
            sample_rate=record.sample_rate,
            encoding=Encoding(record.encoding),
            language=record.language,
            partials=record.partials,
            name=record.name,
            room=record.room,
            listen=record.listen,
            translate=record.translate,
            read=record.read,
            resume=asked.resume,
            last_seq=asked.last_seq,
        )
        self.metrics.sessions_resumed.inc()
        logger.info("session %s resumed after seq %d", link.session_id, asked.last_seq)
        return Start(params, may_speak, link, point)

    async def _serve_client(self, ws: Wire, start: Start) -> None:
        params, link, point = start.params, start.link, start.resumed
        session_id = link.session_id
        client = ClientConnection(
            ws,
            session_id,
            params,
            self.options,
            self._writer,
            link=link,
            resumed=point,
            translations=self._translations,
            metrics=self.metrics,
            may_speak=start.may_speak,
            face=start.face,
        )
        self._connected += 1
        if point is not None:  # its session record exists: it may be renewed at once
            self._clients[link.nonce] = client
        self.metrics.sessions_opened.inc()
        self.metrics.sessions.set(self._connected)
        channel = keys.session_channel(session_id)
        sender = asyncio.create_task(client.send_loop())
        confirmer = asyncio.create_task(client.confirm_loop())
        try:
            if point is None:
                resume_token = await link.create(_record(session_id, params, start.may_speak))
                # only now: a renewal that found no record would end the session as lost
                self._clients[link.nonce] = client
                await self._relay.subscribe(channel, link.nonce, client.on_event)
                if not params.listen:
                    opened = SessionOpened(
                        session_id,
                        params.language,
                        params.partials,
                        time.time(),
                        vocabulary=params.vocabulary,
                    )
                    await self._writer.open_session(opened)
                client.send_text(
                    client.messages.session_begin(params, self.options.model_name, resume_token)
                )
            else:
                await self._relay.subscribe(channel, link.nonce, client.on_event)
                await self._replay(client, start)
            if params.room is not None:
                membership = RoomMembership(
                    self._redis,
                    self._writer,
                    self._relay,
                    params.room,
                    client.speaker,
                    subscriber=link.nonce,
                )
                await client.join_room(
                    membership, missed_since=point.record.opened_at if point else None
                )
            if point is not None and point.ended:
                client.end_replayed()
            else:
                await client.receive_loop(start.first)
            if client.close_enqueued:
                await client.finish_sending(sender, timeout_s=CLOSE_SEND_TIMEOUT_S)
        except REDIS_DOWN:
            self._redis_lost()  # tells this client too, through its sender
            client.end_with_error("unavailable", LOST_REDIS, CLOSE_INTERNAL)
            await asyncio.wait({sender}, timeout=5)
        finally:
            self._clients.pop(link.nonce, None)
            self._connected -= 1
            self.metrics.sessions.set(self._connected)
            self.metrics.closes.labels(str(ws.close_code or 1006)).inc()
            sender.cancel()
            confirmer.cancel()
            await self._forget(client, channel)

    async def _replay(self, client: ClientConnection, start: Start) -> None:
        """A resumed connection's greeting, the messages its client missed, then whatever
        was published while no connection listened (delivered once, in order)."""
        point = start.resumed
        assert point is not None and start.params.resume is not None
        client.send_unlogged(
            client.messages.session_resumed(
                client.params,
                self.options.model_name,
                start.params.resume,
                client_seq=start.params.last_seq,
                samples=point.samples_stored,
            )
        )
        for message in point.missed:
            client.send_unlogged(message)
        for data in await results_log(self._redis, client.session_id):
            try:
                event = decode_event(data)
            except SchemaError:
                logger.exception("session %s: undecodable logged result", client.session_id)
                continue
            client.on_event(event)

    async def _renew_links(self) -> None:
        """Keeps every connection's hold on its session; one another connection took over
        is closed."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            clients = list(self._clients.values())
            if not clients or not self._redis_ok:
                continue
            pipe = self._redis.pipeline(transaction=False)
            for client in clients:
                client.link.renew(pipe)
            now = time.time()
            for client in clients:
                if client.room is not None and client.link.held:
                    client.room.renew(pipe, now=now)
            try:
                answers = (await pipe.execute())[: len(clients)]
            except REDIS_DOWN:
                logger.warning("could not renew session holds", exc_info=True)
                continue
            for client, held in zip(clients, answers, strict=True):
                if held != Hold.HELD:
                    client.hold_lost(Hold(held))

    def _hold_lost(self, holder: str, hold: Hold) -> None:
        client = self._clients.get(holder)
        if client is not None:
            client.hold_lost(hold)

    async def _forget(self, client: ClientConnection, channel: str) -> None:
        ours = client.link.held
        try:
            if client.room is not None:
                await client.room.leave(announce=ours)
            await self._relay.unsubscribe(channel, client.link.nonce)
            if ours:
                await client.link.let_go()
        except REDIS_DOWN:
            logger.info("session %s left without Redis to tell", client.session_id)


@dataclass(frozen=True, slots=True)
class Start:
    """How a connection begins: its session's parameters, and where it resumes from."""

    params: StreamParams
    may_speak: bool
    link: SessionLink
    resumed: ResumePoint | None
    face: Face = dataclasses.field(default_factory=StreamFace)
    first: FaceInput | None = None
    """What the face read before the session opened (a Realtime client's first audio)."""


def _new_session_id() -> str:
    return "s" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")


def _record(session_id: str, params: StreamParams, may_speak: bool) -> ResumableSession:
    return ResumableSession(
        session_id=session_id,
        secret_sha256="",
        sample_rate=params.sample_rate,
        encoding=params.encoding.value,
        language=params.language,
        partials=params.partials,
        name=params.name,
        room=params.room,
        listen=params.listen,
        translate=params.translate,
        may_speak=may_speak,
        opened_at=time.time(),
        read=params.read,
    )


async def _refuse(ws: Wire, session_id: str, error: ProtocolError, face: Face) -> None:
    """The error message, then the close, reading what the client sends meanwhile."""
    with contextlib.suppress(ConnectionClosed):
        for frame in face.frames(MessageBuilder(session_id).error(error.code, error.message)):
            await ws.send(frame)
    drain = asyncio.create_task(discard_incoming(ws))
    await ws.close(*face.close(error.close_code, error.message[:120]))
    drain.cancel()
