"""One session's decisions, without I/O: events in, what to do out.

Whatever face the client speaks, its session is this core. It reads the pipeline's events for
the session (its partials, finals, turns, failures, translations, its room's traffic) and
says what follows from each, as :data:`Effect` values: messages for the client (protocol
v1's, numbered, with the mark that keeps one from being sent twice), results to share with
the room, turns to translate, or that the session cannot go on. It checks and converts the
client's audio and counts what it sent. The connection (``ingest.connection``) carries the
effects out: it owns the socket, the outbox and Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest import logger
from ingest.delivery import DeliveryOrder, ReleasedTurn
from ingest.limits import AudioRateLimiter, CountRateLimiter
from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions
from ingest.protocol import (
    CLOSE_INTERNAL,
    CLOSE_INVALID_PAYLOAD,
    MessageBuilder,
    StreamParams,
    check_audio_frame,
)
from ingest.reading import own_targets, receives, room_languages, translation_targets
from ingest.session_link import ResumePoint
from ingest.translations import CharacterBudget
from shared.audio import PIPELINE_SAMPLE_RATE, PcmConverter
from shared.errors import AudioFormatError, ProtocolError
from shared.schema import (
    FinalTranscript,
    PartialTranscript,
    Participant,
    PipelineEvent,
    RoomLogged,
    RoomPresence,
    RoomTranscript,
    RoomTurn,
    TranscriptResult,
    TranslationDone,
    TranslationTargets,
    UtteranceFailed,
)


@dataclass(frozen=True, slots=True)
class Send:
    """A message for the client (built now: it has the next seq)."""

    message: str
    seq: int
    """The message's number (effects are carried out after the event is read, when later
    messages may have been built)."""
    mark: str = ""
    """Set for a message outside the delivery order, sent once (see :func:`mark`)."""


@dataclass(frozen=True, slots=True)
class Share:
    """One of the session's transcripts, for the others in its room."""

    is_final: bool
    result: TranscriptResult


@dataclass(frozen=True, slots=True)
class ShareTurn:
    """One of the session's turns, for the others in its room."""

    turn_index: int
    utterance_indexes: tuple[int, ...]
    result: TranscriptResult


@dataclass(frozen=True, slots=True)
class Translate:
    """A turn's settled text to translate into ``languages``, once for the whole room."""

    result: TranscriptResult
    turn_index: int
    languages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fail:
    """The session cannot go on: close the connection."""

    code: int
    reason: str


Effect = Send | Share | ShareTurn | Translate | Fail


MAX_HELD_TRANSLATIONS = 64
"""Turns whose translations may wait for them (beyond, a translation is sent at once)."""


def mark(kind: str, *parts: str | int) -> str:
    """The outbox mark of a message sent once outside the delivery order: ``t`` a
    translation, ``r`` another participant's final, ``rt`` another's turn."""
    return ":".join((kind, *map(str, parts)))


class SessionCore:
    def __init__(
        self,
        session_id: str,
        params: StreamParams,
        options: IngestOptions,
        metrics: IngestMetrics,
        *,
        resumed: ResumePoint | None = None,
        now: float,
    ) -> None:
        """``now``: the monotonic clock's reading when the connection opened."""
        self.session_id = session_id
        self.params = params
        self._options = options
        self._metrics = metrics
        point = resumed
        self.messages = MessageBuilder(session_id, last_seq=point.last_seq if point else 0)
        self.delivery = DeliveryOrder(
            next_index=point.next_index if point else 0,
            finals_delivered=point.finals_delivered if point else 0,
            next_turn=point.next_turn if point else 0,
            settled_until=point.settled_until if point else 0,
        )
        self._marks: set[str] = set(point.marks) if point else set()
        """Messages outside the delivery order already sent once."""
        self._participants: dict[str, Participant] = {}
        self.in_room = False
        self._translations_asked: set[str] = set()
        """Marks of the translations asked for and not yet come (or refused)."""
        self._budget = CharacterBudget(options.translate_chars_per_minute, now=now)
        self._unserved: set[str] = set()
        """Languages already told to the room as served by no translator."""
        self._targets_told: TranslationTargets | None = None
        self._held: dict[tuple[str, int], list[TranslationDone]] = {}
        """Translations that came before the turn they translate, by (speaker, turn): sent
        right after it (a transcriber translates a turn as soon as it is settled, while its
        speaker's connection may still hold the turn behind an earlier one)."""
        self._converter = PcmConverter(params.sample_rate, params.encoding)
        self._rate = AudioRateLimiter(options.limits, now=now)
        limits = options.limits
        self._commands = CountRateLimiter(
            limits.max_messages_per_s, limits.message_burst, "messages", now=now
        )
        self._frames = CountRateLimiter(
            limits.max_audio_frames_per_s, limits.audio_frame_burst, "audio frames", now=now
        )
        self.samples_in = 0
        """Samples at 16 kHz this connection put in the pipeline."""
        self.client_samples = point.samples_stored if point else 0
        """The client's samples (at its own rate) in the pipeline since the session began."""

    @property
    def speaker(self) -> Participant:
        return Participant(
            self.session_id, self.params.name, self.params.listen, read=self.params.read
        )

    @property
    def translations_pending(self) -> bool:
        """Whether translations asked for have not all come (the end waits a little)."""
        return bool(self._translations_asked)

    # -- the pipeline's events ----------------------------------------------------------------

    def event(self, event: PipelineEvent, *, now: float) -> list[Effect]:
        """What follows from one event for this session (``now``: the wall clock)."""
        if isinstance(event, RoomTranscript | RoomPresence | RoomTurn):
            return self._room_event(event)
        if isinstance(event, TranslationDone):
            return self._translation(event)
        try:
            released = self.delivery.accept(event)
        except OverflowError:
            logger.exception("session %s: finals out of order beyond the limit", self.session_id)
            return [Fail(CLOSE_INTERNAL, "internal error")]
        effects: list[Effect] = []
        for item in released:
            if isinstance(item, PartialTranscript):
                if self.params.partials:
                    self._metrics.partials.inc()
                    effects.append(self._send(self.messages.partial(item.result, self.params.name)))
                if self.in_room:
                    effects.append(Share(False, item.result))
            elif isinstance(item, FinalTranscript):
                timing = final_timing(item, now=now)
                self._metrics.final_sent(timing["endpoint_to_send_s"])
                final = self.messages.final(
                    item.result, self.params.name, timing, item.commit.ended_by
                )
                effects.append(self._send(final))
                if self.in_room:
                    effects.append(Share(True, item.result))
            elif isinstance(item, ReleasedTurn):
                effects.extend(self._turn(item))
            elif isinstance(item, UtteranceFailed):
                failed = self.messages.error(
                    "transcription_failed",
                    item.message,
                    utterance_id=f"{self.session_id}-{item.utterance_index}",
                )
                effects.append(self._send(failed))
        return effects

    def _turn(self, item: ReleasedTurn) -> list[Effect]:
        message = self.messages.turn(item, self.params.name)
        self._metrics.turns.inc()
        effects: list[Effect] = [self._send(message.text)]
        turn_index = item.turn.turn_index
        effects.extend(self._release(self.session_id, turn_index))
        if self.in_room:
            effects.append(ShareTurn(turn_index, item.utterance_indexes, message.result))
        source = message.result.language
        languages = translation_targets(self.params, self._others(), source)
        if languages and message.result.text:
            own = own_targets(self.params, source)
            marks = {mark("t", self.session_id, f"t{turn_index}", t) for t in own}
            self._translations_asked |= marks - self._marks
            effects.append(Translate(message.result, turn_index, languages))
        return effects

    def _others(self) -> list[Participant]:
        return [p for p in self._participants.values() if p.session_id != self.session_id]

    def targets_changed(self, *, whisper: bool) -> TranslationTargets | None:
        """The languages this speaker's turns go into, when they differ from those last told
        (for the transcribers, which translate into English themselves where ``whisper``)."""
        if self.params.listen:
            return None
        targets = TranslationTargets(
            self.params.room,
            self.params.name,
            room_languages(self.params, self._others()),
            whisper=whisper,
        )
        if targets == self._targets_told:
            return None
        self._targets_told = targets
        return targets

    def _translation(self, done: TranslationDone) -> list[Effect]:
        # the speaker's own comes on two channels, and again from the log on a resume
        about = done.utterance_index if done.turn_index < 0 else f"t{done.turn_index}"
        the_mark = mark("t", done.session_id, about, done.target_language)
        self._translations_asked.discard(the_mark)
        own = done.session_id == self.session_id
        if the_mark in self._marks or not receives(
            self.params, own=own, target=done.target_language
        ):
            return []
        if self._hold(done):
            return []
        self._marks.add(the_mark)
        return [self._send(self.messages.translation(done), the_mark)]

    def _turn_shown(self, done: TranslationDone) -> bool:
        if done.turn_index < 0:
            return True
        if done.session_id == self.session_id:
            return self.delivery.next_turn > done.turn_index
        return mark("rt", done.session_id, done.turn_index) in self._marks

    def _hold(self, done: TranslationDone) -> bool:
        """Keeps a translation whose turn has not been sent yet (bounded: past
        :data:`MAX_HELD_TRANSLATIONS` turns waiting, it goes at once)."""
        if self._turn_shown(done):
            return False
        key = (done.session_id, done.turn_index)
        if key not in self._held and len(self._held) >= MAX_HELD_TRANSLATIONS:
            return False
        held = self._held.setdefault(key, [])
        if all(h.target_language != done.target_language for h in held):
            held.append(done)
        return True

    def _release(self, speaker: str, turn_index: int, *, history: bool = False) -> list[Effect]:
        """The translations that waited for this turn, now that it has been sent."""
        effects: list[Effect] = []
        for done in self._held.pop((speaker, turn_index), []):
            about = f"t{done.turn_index}"
            the_mark = mark("t", done.session_id, about, done.target_language)
            if the_mark not in self._marks:
                self._marks.add(the_mark)
                effects.append(
                    self._send(self.messages.translation(done, history=history), the_mark)
                )
        return effects

    def _room_event(self, event: RoomTranscript | RoomPresence | RoomTurn) -> list[Effect]:
        if isinstance(event, RoomPresence):
            who = event.participant
            if event.joined:
                self._participants[who.session_id] = who
            else:
                self._participants.pop(who.session_id, None)
            if who.session_id == self.session_id:  # a delta: the whole list only on joining
                return []
            room = self.params.room or ""
            return [self._send(self.messages.presence(room, event.joined, who))]
        if event.speaker.session_id == self.session_id:
            return []  # our own, already delivered in order
        if isinstance(event, RoomTurn):
            the_mark = mark("rt", event.speaker.session_id, event.turn_index)
            sent = self._once(the_mark, lambda: self.messages.room_turn(event))
            return sent + self._release(event.speaker.session_id, event.turn_index)
        if event.is_final:  # live, and again from the room's log on a resume
            the_mark = mark("r", event.speaker.session_id, event.result.utterance_index)
            return self._once(
                the_mark, lambda: self.messages.final(event.result, event.speaker.name)
            )
        if self.params.partials:
            return [self._send(self.messages.partial(event.result, event.speaker.name))]
        return []

    def history(self, logged: Sequence[RoomLogged]) -> list[Effect]:
        """The room's recent finals, turns and translations for a participant joining it, in
        the order shared, each marked as history and sent once (live traffic may bring one
        of them again)."""
        effects: list[Effect] = []
        for event in logged:
            effects.extend(self._from_history(event))
        return effects

    def _from_history(self, event: RoomLogged) -> list[Effect]:
        if isinstance(event, TranslationDone):
            if event.session_id == self.session_id or not receives(
                self.params, own=False, target=event.target_language
            ):
                return []
            about = event.utterance_index if event.turn_index < 0 else f"t{event.turn_index}"
            the_mark = mark("t", event.session_id, about, event.target_language)
            if the_mark in self._marks or self._hold(event):
                return []
            return self._once(the_mark, lambda: self.messages.translation(event, history=True))
        if event.speaker.session_id == self.session_id:
            return []
        if isinstance(event, RoomTurn):
            the_mark = mark("rt", event.speaker.session_id, event.turn_index)
            sent = self._once(the_mark, lambda: self.messages.room_turn(event, history=True))
            return sent + self._release(event.speaker.session_id, event.turn_index, history=True)
        if not event.is_final:
            return []
        the_mark = mark("r", event.speaker.session_id, event.result.utterance_index)
        return self._once(
            the_mark,
            lambda: self.messages.final(event.result, event.speaker.name, history=True),
        )

    def _send(self, message: str, the_mark: str = "") -> Send:
        """A message just built (so numbered ``messages.seq``)."""
        return Send(message, self.messages.seq, the_mark)

    def _once(self, the_mark: str, build: Callable[[], str]) -> list[Effect]:
        if the_mark in self._marks:
            return []
        self._marks.add(the_mark)
        return [self._send(build(), the_mark)]

    def joined(self, participants: Sequence[Participant]) -> Send:
        """The room's members as the session joins it: the whole list, once."""
        self.in_room = True
        for participant in participants:
            self._participants[participant.session_id] = participant
        return self.participants()

    def participants(self) -> Send:
        ordered = sorted(self._participants.values(), key=lambda p: (p.name, p.session_id))
        return self._send(self.messages.participants(self.params.room or "", ordered))

    # -- translations -------------------------------------------------------------------------

    def affordable(
        self, result: TranscriptResult, languages: Sequence[str], *, now: float
    ) -> tuple[list[str], list[str]]:
        """Of ``languages`` (most wanted first), those the session's translation budget pays
        for now, in order, and the rest: a budget spent on the first languages leaves the
        others refused, never the first ones for the sake of the others."""
        paid = 0
        while paid < len(languages) and self._budget.allow(len(result.text), now=now):
            paid += 1
        return list(languages[:paid]), list(languages[paid:])

    def translations_refused(
        self, result: TranscriptResult, turn_index: int, languages: Sequence[str], *, now: float
    ) -> list[Effect]:
        """Over the budget: each language's translation of the turn, refused."""
        effects: list[Effect] = []
        for target in languages:
            refused = self.translation_error(
                result,
                turn_index,
                target,
                "rate_limited",
                f"more than {self._options.translate_chars_per_minute} characters a "
                "minute asked for translation",
            )
            effects.extend(self.event(refused, now=now))
        return effects

    def translation_error(
        self, result: TranscriptResult, turn_index: int, target: str, code: str, message: str
    ) -> TranslationDone:
        return TranslationDone(
            session_id=self.session_id,
            speaker=self.params.name,
            utterance_index=result.utterance_index,
            source_language=result.language,
            target_language=target,
            text="",
            error_code=code,
            error_message=message,
            turn_index=turn_index,
        )

    def unserved(
        self, result: TranscriptResult, turn_index: int, languages: Sequence[str], message: str
    ) -> list[TranslationDone]:
        """No translator serves these languages: each is told to the room once (as the
        translation of this turn, with the error), never left to silence."""
        new = [t for t in languages if t not in self._unserved]
        self._unserved.update(new)
        for target in languages:  # the speaker waits for none of them
            self._translations_asked.discard(mark("t", self.session_id, f"t{turn_index}", target))
        return [
            self.translation_error(
                result,
                turn_index,
                target,
                "translation_unavailable",
                message.format(source=result.language, target=target),
            )
            for target in new
        ]

    def translations_abandoned(self) -> None:
        """None of the translations asked for will come (no translator, no Redis)."""
        self._translations_asked.clear()

    # -- the client's input -------------------------------------------------------------------

    def command_frame(self, *, now: float) -> None:
        """A text frame that carries no audio: within the message rate, or 4029."""
        self._commands.admit(now=now)

    def audio(self, payload: bytes, *, now: float) -> bytes:
        """The client's audio checked (size, whole samples, rate) and converted to the
        pipeline's 16 kHz PCM (maybe empty); a :class:`ProtocolError` for audio that ends
        the session."""
        encoding = self.params.encoding
        self._frames.admit(now=now)
        check_audio_frame(payload, encoding, self._options.max_frame_bytes)
        self._rate.admit(len(payload) / encoding.sample_width / self.params.sample_rate, now=now)
        try:
            pcm = self._converter.convert(payload)
        except AudioFormatError as exc:
            raise ProtocolError("invalid_audio", str(exc), CLOSE_INVALID_PAYLOAD) from None
        self.client_samples += len(payload) // encoding.sample_width
        if pcm:
            self.samples_in += len(pcm) // 2
            self._metrics.audio_seconds.inc(len(pcm) / 2 / PIPELINE_SAMPLE_RATE)
        return pcm

    def audio_tail(self) -> bytes:
        """What the converter still holds, at the end of the audio."""
        tail = self._converter.flush()
        self.samples_in += len(tail) // 2
        return tail

    @property
    def duration_s(self) -> float:
        """The client's audio in the session so far, in seconds."""
        return self.client_samples / self.params.sample_rate


def final_timing(final: FinalTranscript, *, now: float | None = None) -> dict[str, float]:
    """A final's ``server_timing``: from the end of its speech to now, the model's part, and
    the rest (queues, Redis, the segmenter)."""
    now = time.time() if now is None else now
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
