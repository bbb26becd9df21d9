"""One client connection: its session state, its receive loop and its bounded send queue."""

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
from ingest.delivery import DeliveryOrder, ReleasedTurn
from ingest.faces import Face, FaceInput, StreamFace
from ingest.limits import AudioRateLimiter, MessageRateLimiter, session_timeout
from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions
from ingest.protocol import (
    CLOSE_INTERNAL,
    CLOSE_INVALID_PAYLOAD,
    CLOSE_NORMAL,
    CLOSE_UNSUPPORTED,
    ClientCommand,
    MessageBuilder,
    StreamParams,
    check_audio_frame,
)
from ingest.redis_io import RedisWriter
from ingest.rooms import RoomMembership
from ingest.session_link import Hold, OutboxEntry, ResumePoint, SessionLink
from ingest.translations import CharacterBudget, TranslationQueue
from ingest.wire import Wire
from shared.audio import PIPELINE_SAMPLE_RATE, PcmConverter
from shared.errors import AudioFormatError, ProtocolError
from shared.resilience import REDIS_DOWN
from shared.schema import (
    AudioAppended,
    FinalizeRequested,
    FinalTranscript,
    PartialTranscript,
    Participant,
    PipelineEvent,
    RoomPresence,
    RoomTranscript,
    RoomTurn,
    StreamClosed,
    TranscriptResult,
    TranslationDone,
    TranslationJob,
    UtteranceFailed,
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
    """Everything one streaming client owns; nothing here is shared between clients."""

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
        point = resumed
        self.messages = MessageBuilder(session_id, last_seq=point.last_seq if point else 0)
        self._converter = PcmConverter(params.sample_rate, params.encoding)
        self._delivery = DeliveryOrder(
            next_index=point.next_index if point else 0,
            finals_delivered=point.finals_delivered if point else 0,
            next_turn=point.next_turn if point else 0,
            settled_until=point.settled_until if point else 0,
        )
        self._outgoing: asyncio.Queue[Outgoing] = asyncio.Queue(options.outgoing_queue_messages)
        self._all_delivered = asyncio.Event()
        self._translations_asked: set[str] = set()
        """Marks of the translations asked for and not yet come (or refused)."""
        self._translations_done = asyncio.Event()
        self._translations_done.set()
        self._samples_in = 0
        """Samples at 16 kHz this connection put in the pipeline."""
        self._client_samples = point.samples_stored if point else 0
        """The client's samples (at its own rate) in the pipeline since the session began."""
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
        self._participants: dict[str, Participant] = {}
        self._translations = translations
        self._budget = CharacterBudget(options.translate_chars_per_minute, now=time.monotonic())
        self._told_unavailable = False
        self._marks: set[str] = set(point.marks) if point else set()
        """Messages outside the delivery order already sent once (see ``_mark``)."""
        self._metrics = metrics or IngestMetrics(CollectorRegistry())
        self._may_speak = may_speak
        self._opened_at = time.monotonic()
        self._rate = AudioRateLimiter(options.limits, now=self._opened_at)
        self._messages = MessageRateLimiter(options.limits, now=self._opened_at)

    @property
    def speaker(self) -> Participant:
        return Participant(self.session_id, self.params.name, self.params.listen)

    # -- results from Redis (called by the relay) -------------------------------------------

    def on_event(self, event: PipelineEvent) -> None:
        if isinstance(event, RoomTranscript | RoomPresence | RoomTurn):
            self._on_room_event(event)
            return
        if isinstance(event, TranslationDone):
            # the speaker's own comes on two channels, and again from the log on a resume
            about = event.utterance_index if event.turn_index < 0 else f"t{event.turn_index}"
            mark = _mark("t", event.session_id, about, event.target_language)
            if mark not in self._marks:
                self._marks.add(mark)
                self._enqueue(self.messages.translation(event), mark=mark)
            self._translations_asked.discard(mark)
            if not self._translations_asked:
                self._translations_done.set()
            return
        try:
            released = self._delivery.accept(event)
        except OverflowError:
            logger.exception("session %s: finals out of order beyond the limit", self.session_id)
            self._abort(CLOSE_INTERNAL, "internal error")
            return
        for item in released:
            if isinstance(item, PartialTranscript):
                if self.params.partials:
                    self._metrics.partials.inc()
                    self._enqueue(self.messages.partial(item.result, self.params.name))
                if self.room is not None:
                    self.room.share(False, item.result)
            elif isinstance(item, FinalTranscript):
                timing = _timing(item)
                self._metrics.final_sent(timing["endpoint_to_send_s"])
                self._enqueue(
                    self.messages.final(item.result, self.params.name, timing, item.commit.ended_by)
                )
                if self.room is not None:
                    self.room.share(True, item.result)
            elif isinstance(item, ReleasedTurn):
                message = self.messages.turn(item, self.params.name)
                self._metrics.turns.inc()
                self._enqueue(message.text)
                if self.room is not None:
                    self.room.share_turn(
                        item.turn.turn_index, item.utterance_indexes, message.result
                    )
                if self.params.translate and message.result.text:
                    self._expect_translations(item.turn.turn_index)
                    self._spawn(self._request_translations(message.result, item.turn.turn_index))
            elif isinstance(item, UtteranceFailed):
                self._enqueue(
                    self.messages.error(
                        "transcription_failed",
                        item.message,
                        utterance_id=f"{self.session_id}-{item.utterance_index}",
                    )
                )
        if self._delivery.complete:
            self._all_delivered.set()

    def _on_room_event(self, event: RoomTranscript | RoomPresence | RoomTurn) -> None:
        assert self.room is not None
        if isinstance(event, RoomPresence):
            who = event.participant
            if event.joined:
                self._participants[who.session_id] = who
            else:
                self._participants.pop(who.session_id, None)
            if who.session_id != self.session_id:  # a delta: the whole list only on joining
                self._enqueue(self.messages.presence(self.room.room, event.joined, who))
            return
        if event.speaker.session_id == self.session_id:
            return  # our own, already delivered in order
        if isinstance(event, RoomTurn):
            mark = _mark("rt", event.speaker.session_id, event.turn_index)
            if mark not in self._marks:
                self._marks.add(mark)
                self._enqueue(self.messages.room_turn(event), mark=mark)
            return
        if event.is_final:
            mark = _mark("r", event.speaker.session_id, event.result.utterance_index)
            if mark not in self._marks:  # live, and again from the room's log on a resume
                self._marks.add(mark)
                self._enqueue(self.messages.final(event.result, event.speaker.name), mark=mark)
        elif self.params.partials:
            self._enqueue(self.messages.partial(event.result, event.speaker.name))

    async def join_room(self, membership: RoomMembership, *, missed_since: float | None) -> None:
        """``missed_since``: for a resumed session, when it began: the others' finals since
        then that it has not had yet come from the room's log."""
        self.room = membership
        for participant in await membership.join(self.on_event):
            self._participants[participant.session_id] = participant
        self.send_participants()
        if missed_since is not None:
            for final in await membership.finals_since(missed_since):
                self.on_event(final)

    def send_participants(self) -> None:
        assert self.room is not None
        ordered = sorted(self._participants.values(), key=lambda p: (p.name, p.session_id))
        self._enqueue(self.messages.participants(self.room.room, ordered))

    def _enqueue(self, message: str | _Unlogged | _FaceFrame | _Close, *, mark: str = "") -> None:
        """Queues a message just built (numbered ``self.messages.seq``) for the outbox and the
        client, or something sent as it is."""
        if self.close_enqueued:
            return
        item: Outgoing = (
            OutboxEntry(
                self.messages.seq,
                message,
                self._delivery.next_index,
                self._delivery.finals_delivered,
                mark,
                self._delivery.next_turn,
                self._delivery.settled_until,
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

    def _expect_translations(self, turn_index: int) -> None:
        """The session's end waits (a little) for these translations."""
        marks = {_mark("t", self.session_id, f"t{turn_index}", t) for t in self.params.translate}
        self._translations_asked |= marks - self._marks
        if self._translations_asked:
            self._translations_done.clear()

    def _not_expecting_translations(self) -> None:
        self._translations_asked.clear()
        self._translations_done.set()

    async def _request_translations(self, result: TranscriptResult, turn_index: int) -> None:
        """Translations of a turn's settled text (``result.utterance_index``: its last)."""
        targets = self.params.translate
        try:
            if self._translations is None or not await self._translations.available():
                self._not_expecting_translations()
                self._translation_unavailable()
                return
            if not self._budget.allow(len(result.text) * len(targets), now=time.monotonic()):
                for target in targets:
                    self.on_event(
                        self._translation_refused(result, turn_index, target, "rate_limited")
                    )
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
            self._not_expecting_translations()
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

    def _translation_refused(
        self, result: TranscriptResult, turn_index: int, target: str, code: str
    ) -> TranslationDone:
        return TranslationDone(
            session_id=self.session_id,
            speaker=self.params.name,
            utterance_index=result.utterance_index,
            source_language=result.language,
            target_language=target,
            text="",
            error_code=code,
            error_message=(
                f"more than {self._options.translate_chars_per_minute} characters a minute "
                "asked for translation"
            ),
            turn_index=turn_index,
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
                        self._messages.admit(now=time.monotonic())
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
        check_audio_frame(payload, self.params.encoding, self._options.max_frame_bytes)
        self._rate.admit(
            len(payload) / self.params.encoding.sample_width / self.params.sample_rate,
            now=time.monotonic(),
        )
        try:
            pcm = self._converter.convert(payload)
        except AudioFormatError as exc:
            raise ProtocolError("invalid_audio", str(exc), CLOSE_INVALID_PAYLOAD) from None
        self._client_samples += len(payload) // self.params.encoding.sample_width
        if pcm:
            self._samples_in += len(pcm) // 2
            self._metrics.audio_seconds.inc(len(pcm) / 2 / PIPELINE_SAMPLE_RATE)
            await self._writer.append(
                self.session_id,
                AudioAppended(pcm, time.time()),
                holder=self.link.nonce,
                samples=self._client_samples,
            )

    async def _close_stream(self, reason: str) -> None:
        self.stream_closed = True
        tail = self._converter.flush()
        now = time.time()
        holder = self.link.nonce
        if tail:
            self._samples_in += len(tail) // 2
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
        duration = self._client_samples / self.params.sample_rate
        await self.link.mark_ended()
        self._enqueue(self.messages.session_end(duration, self._delivery.finals_delivered))
        await self._writer.forget_session(self.session_id, self._delivery.expected_utterances or 0)
        self._enqueue(_Close(CLOSE_NORMAL, "session ended"))


def _mark(kind: str, *parts: str | int) -> str:
    """The outbox mark of a message sent once outside the delivery order: ``t`` a
    translation, ``r`` another participant's final."""
    return ":".join((kind, *map(str, parts)))


def _timing(final: FinalTranscript) -> dict[str, float]:
    now = time.time()
    result, commit = final.result, final.commit
    latency = now - commit.endpoint_at
    model_after_endpoint = max(
        0.0, result.model_done_at - max(result.model_started_at, commit.endpoint_at)
    )
    return {
        "endpoint_to_send_s": round(latency, 4),
        "model_s": round(result.model_done_at - result.model_started_at, 4),
        "overhead_s": round(latency - model_after_endpoint, 4),
    }


async def discard_incoming(ws: Wire, *, timeout_s: float = 10.0) -> None:
    """Reads and drops what the client still sends while the server closes: unread frames
    would otherwise hold back the client's close frame until the close timeout."""
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                await ws.recv()
