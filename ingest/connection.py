"""One client connection: the I/O around its session's core (``ingest.session_core``).

It reads the client's frames (through its face) and the pipeline's events, hands both to
the core, and carries out what the core decides: it writes audio and commands to Redis,
keeps the outbox, sends through a bounded queue, shares with the room and asks for
translations.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from websockets.exceptions import ConnectionClosed

from ingest import logger
from ingest.auth import listen_only
from ingest.faces import Face, FaceInput, StreamFace
from ingest.limits import session_timeout
from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions
from ingest.protocol import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_UNSUPPORTED,
    ClientCommand,
    StreamParams,
)
from ingest.reading import same_language
from ingest.redis_io import RedisWriter
from ingest.rooms import RoomMembership
from ingest.session_core import Effect, Send, SessionCore, Share, ShareTurn, Translate
from ingest.session_link import Hold, OutboxEntry, ResumePoint, SessionLink
from ingest.translations import TranslationQueue
from ingest.wire import Wire
from shared.errors import ProtocolError
from shared.resilience import REDIS_DOWN
from shared.schema import (
    AudioAppended,
    FinalizeRequested,
    Participant,
    PipelineEvent,
    StreamClosed,
    TranscriptResult,
    TranslationJob,
    TranslationTargets,
)

LOST_REDIS = "the server lost its connection to Redis; this session's state may be gone"
SUPERSEDED = "the session was resumed on another connection"
STATE_GONE = "this session's state is gone from Redis (lost, or not renewed in time)"


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Unlogged:
    """A message sent as it is, outside the outbox (a resumed connection's greeting and the
    messages it replays, which the outbox already holds)."""

    text: str


@dataclass(frozen=True, slots=True)
class _FaceFrame:
    """A frame the client's face wrote itself (already in its protocol), outside the outbox."""

    text: str


Outgoing = OutboxEntry | _Unlogged | _FaceFrame | _Close


def _size(item: Outgoing) -> int:
    if isinstance(item, OutboxEntry):
        return len(item.message)
    return len(item.text) if isinstance(item, _Unlogged | _FaceFrame) else 0


TRANSLATIONS_WAIT_S = 10.0
"""After ``close``, how long the session's end waits for translations still on their way."""
CONFIRM_EVERY_S = 5.0
"""How often a ping asks the client to confirm what it has, so the outbox can be trimmed."""


class ClientConnection:
    """Everything one streaming client owns; nothing here is shared between clients. The
    session's decisions are its :class:`SessionCore`'s; this carries them out."""

    def __init__(
        self,
        ws: Wire,
        session_id: str,
        params: StreamParams,
        options: IngestOptions,
        writer: RedisWriter,
        *,
        link: SessionLink,
        resumed: ResumePoint | None = None,
        translations: TranslationQueue | None = None,
        metrics: IngestMetrics | None = None,
        may_speak: bool = True,
        face: Face | None = None,
    ) -> None:
        """``face``: the wire protocol the client speaks (protocol v1 unless told)."""
        self.ws = ws
        self.face: Face = face or StreamFace()
        self.session_id = session_id
        self.params = params
        self._options = options
        self._writer = writer
        self.link = link
        self._opened_at = time.monotonic()
        self._metrics = metrics or IngestMetrics(CollectorRegistry())
        self.core = SessionCore(
            session_id, params, options, self._metrics, resumed=resumed, now=self._opened_at
        )
        self.messages = self.core.messages
        self._outgoing: asyncio.Queue[Outgoing] = asyncio.Queue(options.outgoing_queue_messages)
        self._all_delivered = asyncio.Event()
        self._translations_done = asyncio.Event()
        self._translations_done.set()
        self._sent_seq = params.last_seq
        """The highest seq handed to the socket (a resumed client already holds its last_seq)."""
        self.stream_closed = False
        self.detached = False
        """The connection dropped and the session waits for a resume."""
        self.close_enqueued = False
        self._dropped = False
        self._queued_bytes = 0
        """Of the messages in ``_outgoing``, bounded by ``outgoing_queue_bytes``."""
        self._background: set[asyncio.Task[None]] = set()
        self.room: RoomMembership | None = None
        self._translations = translations
        self._told_unavailable = False
        self._may_speak = may_speak

    @property
    def speaker(self) -> Participant:
        return self.core.speaker

    # -- results from Redis (called by the relay) -------------------------------------------

    def on_event(self, event: PipelineEvent) -> None:
        self._carry_out(self.core.event(event, now=time.time()))

    def _carry_out(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._enqueue(effect.message, mark=effect.mark, seq=effect.seq)
            elif isinstance(effect, Share):
                if self.room is not None:
                    self.room.share(effect.is_final, effect.result)
            elif isinstance(effect, ShareTurn):
                if self.room is not None:
                    self.room.share_turn(effect.turn_index, effect.utterance_indexes, effect.result)
            elif isinstance(effect, Translate):
                self._spawn(
                    self._request_translations(effect.result, effect.turn_index, effect.languages)
                )
            else:
                self._abort(effect.code, effect.reason)
        if self.core.translations_pending:
            self._translations_done.clear()
        else:
            self._translations_done.set()
        if self.core.delivery.complete:
            self._all_delivered.set()
        targets = self.core.targets_changed(whisper=self._options.whisper_translation)
        if targets is not None and self._options.whisper_translation:
            self._spawn(self._tell_targets(targets))

    async def _tell_targets(self, targets: TranslationTargets) -> None:
        try:
            await self.link.set_targets(targets)
        except redis.RedisError:
            logger.exception("session %s: cannot store its translation targets", self.session_id)

    async def join_room(self, membership: RoomMembership, *, missed_since: float | None) -> None:
        """``missed_since``: for a resumed session, when it began: the others' finals since
        then that it has not had yet come from the room's log. A new session is sent the
        room's recent history instead."""
        self.room = membership
        self.core.in_room = True
        self._carry_out([self.core.joined(await membership.join(self.on_event))])
        if missed_since is not None:
            for final in await membership.finals_since(missed_since):
                self.on_event(final)
            return
        history = self._options.room_history
        if history.entries:
            logged = await membership.history(
                entries=history.entries, since=time.time() - history.max_age_s
            )
            self._carry_out(self.core.history(logged))

    def send_participants(self) -> None:
        self._carry_out([self.core.participants()])

    def _enqueue(
        self,
        message: str | _Unlogged | _FaceFrame | _Close,
        *,
        mark: str = "",
        seq: int | None = None,
    ) -> None:
        """Queues a message for the outbox and the client (numbered ``seq``; unless told, it
        was just built: ``self.messages.seq``), or something sent as it is."""
        if self.close_enqueued:
            return
        item: Outgoing = (
            OutboxEntry(
                self.messages.seq if seq is None else seq,
                message,
                self.core.delivery.next_index,
                self.core.delivery.finals_delivered,
                mark,
                self.core.delivery.next_turn,
                self.core.delivery.settled_until,
            )
            if isinstance(message, str)
            else message
        )
        self.close_enqueued = isinstance(item, _Close)
        if self._dropped:
            return
        size = _size(item)
        if self._queued_bytes + size > self._options.outgoing_queue_bytes:
            self.drop(f"over {self._options.outgoing_queue_bytes} bytes queued")
            return
        try:
            self._outgoing.put_nowait(item)
        except asyncio.QueueFull:
            self.drop("its send queue is full")
            return
        self._queued_bytes += size

    def drop(self, why: str) -> None:
        """Disconnects a client that does not read (once, with one log line); its session
        stays resumable and nobody else's is touched."""
        if self._dropped:
            return
        self._dropped = True
        logger.warning(
            "session %s: client is not reading (%s); disconnecting", self.session_id, why
        )
        self._abort(CLOSE_INTERNAL, "client not reading")

    async def finish_sending(self, sender: asyncio.Task[None], *, timeout_s: float) -> None:
        """Waits for the sender to deliver what is queued and close; a client that does not
        read it in ``timeout_s`` is dropped (a stalled reader is not a Redis failure)."""
        done, _ = await asyncio.wait({sender}, timeout=timeout_s)
        if not done:
            sender.cancel()
            self.drop(f"nothing read for {timeout_s:.0f} s at the end of its session")

    def end_replayed(self) -> None:
        """A resumed session that had already ended: what the client missed was replayed."""
        self._enqueue(_Close(CLOSE_NORMAL, "session ended"))

    def end_with_error(self, code: str, message: str, close_code: int) -> None:
        """Tells the client why, then closes (e.g. when Redis was lost under the session)."""
        self._enqueue(self.messages.error(code, message))
        self._enqueue(_Close(close_code, message[:120]))

    def _abort(self, code: int, reason: str) -> None:
        self._spawn(self.ws.close(code, reason))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- translations -----------------------------------------------------------------------

    async def _request_translations(
        self, result: TranscriptResult, turn_index: int, languages: tuple[str, ...]
    ) -> None:
        """Translations of a turn's settled text (``result.utterance_index``: its last) into
        ``languages``: into English by the transcriber's own model where it translates (it
        already has), the others by the translator."""
        targets = [
            t
            for t in languages
            if not (self._options.whisper_translation and same_language(t, "en"))
        ]
        if not targets:
            return
        try:
            if self._translations is None or not await self._translations.available():
                self._translations_unserved(result, turn_index, targets)
                return
            targets, over = self.core.affordable(result, targets, now=time.monotonic())
            if over:
                self._carry_out(
                    self.core.translations_refused(result, turn_index, over, now=time.time())
                )
            if not targets:
                return
            now = time.time()
            await self._translations.enqueue(
                [
                    TranslationJob(
                        session_id=self.session_id,
                        room=self.params.room,
                        speaker=self.params.name,
                        utterance_index=result.utterance_index,
                        text=result.text,
                        source_language=result.language,
                        target_language=target,
                        enqueued_at=now,
                        turn_index=turn_index,
                    )
                    for target in targets
                ]
            )
        except redis.RedisError:
            logger.exception("session %s: cannot enqueue translations", self.session_id)
            self._translations_abandoned()

    def _translations_unserved(
        self, result: TranscriptResult, turn_index: int, targets: list[str]
    ) -> None:
        """No translator runs: the speaker is told once, and each language's readers once
        (as that language's translation of this turn, with the error)."""
        served = (
            "English from Whisper's own translation" if self._options.whisper_translation else ""
        )
        message = (
            "no translator serves {source} -> {target}: start one (streamscribe translator)"
            + (f"; this server translates only into {served}" if served else "")
        )
        for done in self.core.unserved(result, turn_index, targets, message):
            self.on_event(done)
            if self.room is not None:
                self.room.share_translation(done)
        self._translation_unavailable()
        if not self.core.translations_pending:
            self._translations_done.set()

    def _translations_abandoned(self) -> None:
        self.core.translations_abandoned()
        self._translations_done.set()
        self._translation_unavailable()

    def _translation_unavailable(self) -> None:
        if not self._told_unavailable:
            self._told_unavailable = True
            self._enqueue(
                self.messages.error(
                    "translation_unavailable",
                    "no translator is running: transcripts continue without translations",
                )
            )

    # -- sending --------------------------------------------------------------------------

    async def send_loop(self) -> None:
        """Writes what is queued to the outbox, then sends it; stops at a close, or when
        another connection has taken the session over."""
        try:
            while True:
                batch = [await self._outgoing.get()]
                while not self._outgoing.empty() and not isinstance(batch[-1], _Close):
                    batch.append(self._outgoing.get_nowait())
                self._queued_bytes -= sum(_size(item) for item in batch)
                logged = [item for item in batch if isinstance(item, OutboxEntry)]
                if logged and await self.link.append(logged) is not Hold.HELD:
                    await self._close_unheld()
                    return
                for item in batch:
                    if isinstance(item, _Close):
                        await self._close(item.code, item.reason)
                        return
                    if isinstance(item, _FaceFrame):
                        await self.ws.send(item.text)
                        continue
                    await self._send(item.message if isinstance(item, OutboxEntry) else item.text)
                    if isinstance(item, OutboxEntry):
                        self._sent_seq = item.seq
        except ConnectionClosed:
            return
        except REDIS_DOWN:
            logger.warning("session %s: outbox unreachable", self.session_id, exc_info=True)
            with contextlib.suppress(ConnectionClosed):
                await self._send(self.messages.error("unavailable", LOST_REDIS))
                await self._close(CLOSE_INTERNAL, "redis unavailable")

    async def _send(self, message: str) -> None:
        """One of the session's messages, as the client's protocol has it."""
        for frame in self.face.frames(message):
            await self.ws.send(frame)

    async def _close(self, code: int, reason: str) -> None:
        await self.ws.close(*self.face.close(code, reason))

    async def _close_unheld(self) -> None:
        """Closes a connection that no longer holds its session, writing nothing more."""
        if self.link.hold is Hold.SUPERSEDED:
            await self._close(CLOSE_NORMAL, SUPERSEDED)
            return
        logger.error("session %s: its state is gone from Redis", self.session_id)
        with contextlib.suppress(ConnectionClosed):
            await self._send(self.messages.error("unavailable", STATE_GONE))
            await self._close(CLOSE_INTERNAL, "session state lost")

    async def confirm_loop(self) -> None:
        """Pings the client now and then; its pong confirms every message sent before the
        ping, which the outbox then lets go."""
        with contextlib.suppress(ConnectionClosed, TimeoutError, *REDIS_DOWN):
            while True:
                await asyncio.sleep(CONFIRM_EVERY_S)
                sent = self._sent_seq
                pong = await self.ws.ping()
                await asyncio.wait_for(pong, timeout=30)
                await self.link.confirmed(sent)

    def send_text(self, text: str) -> None:
        self._enqueue(text)

    def send_unlogged(self, text: str) -> None:
        self._enqueue(_Unlogged(text))

    def hold_lost(self, hold: Hold) -> None:
        """Another connection holds the session now, or its state is gone: this one writes
        nothing more and closes."""
        if self.link.held:
            self.link.hold = hold
            self._spawn(self._close_unheld())

    # -- receiving ------------------------------------------------------------------------

    async def receive_loop(self, first: FaceInput | None = None) -> None:
        """Reads until the client closes the stream, breaks protocol or disconnects;
        ``first``: what the face read before the session opened (its first audio)."""
        try:
            while True:
                if first is not None:
                    got, first = first, None
                else:
                    frame = await self._next_frame()
                    if isinstance(frame, bytes):
                        await self._speak(frame)
                        continue
                    got = self.face.read(frame)
                    if not got.audio:  # audio in text frames is bounded as audio
                        self.core.command_frame(now=time.monotonic())
                for reply in got.replies:
                    self._enqueue(_FaceFrame(reply))
                if got.audio:
                    await self._speak(got.audio)
                command = got.command
                if command is ClientCommand.FINALIZE and not self._may_speak:
                    raise listen_only()
                if command is ClientCommand.FINALIZE and not self.params.listen:
                    await self._writer.append(
                        self.session_id, FinalizeRequested(time.time()), holder=self.link.nonce
                    )
                elif command is ClientCommand.CLOSE:
                    if not self.params.listen:
                        await self._close_stream("close")
                        await self._finish()
                    else:
                        await self.link.mark_ended()
                        self._enqueue(self.messages.session_end(0.0, 0))
                        self._enqueue(_Close(CLOSE_NORMAL, "session ended"))
                    return
        except ProtocolError as exc:
            logger.info("session %s: %s (%d)", self.session_id, exc.message, exc.close_code)
            await self.link.mark_ended()
            self._enqueue(self.messages.error(exc.code, exc.message))
            self._enqueue(_Close(exc.close_code, exc.message[:120]))
            await discard_incoming(self.ws)
        except ConnectionClosed:
            # Dropped: the session waits for its client to resume, unless resuming is off.
            self.detached = self._options.resume_window_s > 0 and self.face.resumable
        finally:
            ours = self.link.held and not self.detached
            if ours and not self.stream_closed and not self.params.listen:
                await self._close_stream("disconnect")

    async def _speak(self, audio: bytes) -> None:
        if not self._may_speak:
            raise listen_only()
        if self.params.listen:
            raise ProtocolError(
                "listener_audio",
                "this session joined as a listener and cannot send audio",
                CLOSE_UNSUPPORTED,
            )
        await self._audio(audio)

    async def _next_frame(self) -> str | bytes:
        """The next frame, or 4008 when the client went quiet or the session is too long."""
        limits = self._options.limits
        now = time.monotonic()
        left_in_session = self._opened_at + limits.max_session_s - now
        idle_s = min(limits.idle_timeout_s, self.face.idle_timeout_s or limits.idle_timeout_s)
        wait = min(idle_s, left_in_session)
        try:
            async with asyncio.timeout(max(0.0, wait)):
                return await self.ws.recv()
        except TimeoutError:
            idle = wait < left_in_session
            raise session_timeout(idle_s if idle else None, limits) from None

    async def _audio(self, payload: bytes) -> None:
        pcm = self.core.audio(payload, now=time.monotonic())
        if pcm:
            await self._writer.append(
                self.session_id,
                AudioAppended(pcm, time.time()),
                holder=self.link.nonce,
                samples=self.core.client_samples,
            )

    async def _close_stream(self, reason: str) -> None:
        self.stream_closed = True
        tail = self.core.audio_tail()
        now = time.time()
        holder = self.link.nonce
        if tail:
            await self._writer.append(self.session_id, AudioAppended(tail, now), holder=holder)
        await self._writer.append(self.session_id, StreamClosed(reason, now), holder=holder)

    async def _finish(self) -> None:
        delivered = asyncio.create_task(self._all_delivered.wait())
        gone = asyncio.create_task(self.ws.wait_closed())
        await asyncio.wait(
            (delivered, gone),
            timeout=self._options.close_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        delivered.cancel()
        gone.cancel()
        if gone.done() and not gone.cancelled():
            return  # the client left before its finals were ready
        if not self._all_delivered.is_set():
            logger.error("session %s: finals not complete after close", self.session_id)
            self._enqueue(self.messages.error("timeout", "transcription did not finish in time"))
            self._enqueue(_Close(CLOSE_INTERNAL, "transcription timed out"))
            return
        if not self._translations_done.is_set():  # the last turn's, asked for just now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._translations_done.wait(), TRANSLATIONS_WAIT_S)
        await self.link.mark_ended()
        delivery = self.core.delivery
        self._enqueue(self.messages.session_end(self.core.duration_s, delivery.finals_delivered))
        await self._writer.forget_session(self.session_id, delivery.expected_utterances or 0)
        self._enqueue(_Close(CLOSE_NORMAL, "session ended"))


async def discard_incoming(ws: Wire, *, timeout_s: float = 10.0) -> None:
    """Reads and drops what the client still sends while the server closes: unread frames
    would otherwise hold back the client's close frame until the close timeout."""
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                await ws.recv()
