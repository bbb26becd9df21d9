"""Every message that crosses a process boundary inside the pipeline, versioned.

msgspec Structs, frozen and typed. Stream entries (audio, jobs, session announcements) are
flat field maps so that PCM travels as raw bytes, their other fields as one JSON ``meta``;
pub/sub events are JSON objects tagged by ``kind``, with one decoder for the channel. Each
type has ``encode`` and ``decode``; decoding anything else raises :class:`SchemaError`. Records
private to one part live in it (``segmenter.checkpoint``, ``ingest.resume_record``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Self, TypeVar

import msgspec

from shared.errors import SchemaError

SCHEMA_VERSION: Literal[1] = 1

_T = TypeVar("_T")

Fields = Mapping[bytes, bytes]

_ENCODER = msgspec.json.Encoder()


def entry_field(fields: Fields, name: str) -> bytes:
    """A stream entry's field, or a :class:`SchemaError` naming it."""
    try:
        return fields[name.encode()]
    except KeyError:
        raise SchemaError(f"missing field {name!r}") from None


def check_version(fields: Fields) -> None:
    version = entry_field(fields, "v")
    if version != str(SCHEMA_VERSION).encode():
        raise SchemaError(f"unsupported schema version {version!r}")


def _meta(decoder: msgspec.json.Decoder[_T], fields: Fields) -> _T:
    return _decode_with(decoder, entry_field(fields, "meta"), "meta")


def stream_entry(kind: str, meta: bytes, pcm: bytes | None = None) -> dict[str, bytes]:
    """A stream entry's flat field map: version, kind, JSON meta and raw PCM if any."""
    out = {"v": _VERSION, "kind": kind.encode(), "meta": meta}
    if pcm is not None:
        out["pcm"] = pcm
    return out


_VERSION = str(SCHEMA_VERSION).encode()


# --- session announcements: ingest -> segmenters (stream with a consumer group) -----------
#
# Stream entries are flat field maps: ``v`` (schema version), ``kind``, ``meta`` (the typed
# fields as JSON, one msgspec decoder per kind) and, for audio and jobs, ``pcm`` (raw bytes).


class SessionOpened(msgspec.Struct, frozen=True):
    """A new session whose audio stream a segmenter must claim."""

    session_id: str
    language: str | None
    partials: bool
    opened_at: float
    vocabulary: str = ""
    """Words the speaker will say (names, jargon), passed to Whisper as hot words."""

    def encode(self) -> dict[str, bytes]:
        return stream_entry("session.opened", _ENCODER.encode(self))

    @classmethod
    def decode(cls, fields: Fields) -> SessionOpened:
        check_version(fields)
        if entry_field(fields, "kind") != b"session.opened":
            raise SchemaError("not a session.opened entry")
        return _meta(_SESSION_OPENED_DECODER, fields)


# --- audio stream entries: ingest -> segmenter ---------------------------------------------


class AudioAppended(msgspec.Struct, frozen=True):
    """16 kHz mono s16le PCM, received by ingest at ``received_at`` (wall clock)."""

    pcm: bytes
    received_at: float

    def encode(self) -> dict[str, bytes]:
        return stream_entry("audio", _ENCODER.encode(_ReceivedAt(self.received_at)), self.pcm)


class _ReceivedAt(msgspec.Struct, frozen=True):
    """The ``meta`` of an audio entry (its PCM travels raw beside it)."""

    received_at: float


class FinalizeRequested(msgspec.Struct, frozen=True):
    """The client asked to end the current utterance now."""

    received_at: float

    def encode(self) -> dict[str, bytes]:
        return stream_entry("finalize", _ENCODER.encode(self))


class StreamClosed(msgspec.Struct, frozen=True):
    """No more audio: the client sent ``close`` (reason "close") or went away."""

    reason: str
    received_at: float

    def encode(self) -> dict[str, bytes]:
        return stream_entry("closed", _ENCODER.encode(self))


AudioStreamEntry = AudioAppended | FinalizeRequested | StreamClosed


def decode_audio_entry(fields: Fields) -> AudioStreamEntry:
    check_version(fields)
    kind = entry_field(fields, "kind")
    if kind == b"audio":
        pcm = entry_field(fields, "pcm")
        if len(pcm) % 2:
            raise SchemaError("audio entry has an odd number of bytes")
        return AudioAppended(pcm, _meta(_AUDIO_META_DECODER, fields).received_at)
    if kind == b"finalize":
        return _meta(_RECEIVED_DECODER, fields)
    if kind == b"closed":
        return _meta(_CLOSED_DECODER, fields)
    raise SchemaError(f"unknown audio entry kind {kind!r}")


# --- transcription jobs: segmenter -> transcribers -----------------------------------------


class JobKind(StrEnum):
    FINAL = "final"
    """Transcribe and publish as the utterance's final result."""
    SPECULATIVE = "speculative"
    """Transcribe at the first pause; becomes the final only if the segmenter commits it."""
    PARTIAL = "partial"
    """Interim hypothesis; skipped when superseded."""
    TURN = "turn"
    """A turn's audio as a whole, with the speaker's earlier text as prompt: settles the
    finals ``first_utterance``..``last_utterance`` (``utterance_index`` is the turn's)."""


class TranscriptionJob(msgspec.Struct, frozen=True):
    """Its ``meta`` holds every field but the audio (``pcm`` empty there); the audio travels
    raw in the entry's own ``pcm`` field."""

    kind: JobKind
    session_id: str
    utterance_index: int
    revision: int
    """Speculation revision (SPECULATIVE) or 0."""
    partial_seq: int
    """Sequence of the partial within its utterance (PARTIAL) or 0."""
    start_sample: int
    """Offset of ``pcm`` in the session's 16 kHz stream."""
    pcm: bytes
    language: str | None
    speech_ratio: float
    """Fraction of the utterance's VAD frames that were speech."""
    endpoint_at: float
    """Wall time ingest received the audio that ended the utterance (FINAL), else 0."""
    enqueued_at: float
    first_utterance: int = -1
    """TURN: the first utterance the turn settles; else -1."""
    last_utterance: int = -1
    vocabulary: str = ""
    """The session's hot words ('' for none)."""
    ended_by: str = ""
    """FINAL: what ended the utterance (see :attr:`Commit.ended_by`)."""
    wall_start: float = 0.0
    """Wall time (Unix seconds) ingest received the sample at ``start_sample`` (0: unknown)."""

    def encode(self) -> dict[str, bytes]:
        meta = _ENCODER.encode(msgspec.structs.replace(self, pcm=b""))
        return stream_entry("job", meta, self.pcm)

    @classmethod
    def decode(cls, fields: Fields) -> TranscriptionJob:
        check_version(fields)
        if entry_field(fields, "kind") != b"job":
            raise SchemaError("not a job entry")
        pcm = entry_field(fields, "pcm")
        if len(pcm) % 2:
            raise SchemaError("job audio has an odd number of bytes")
        return msgspec.structs.replace(_meta(_JOB_DECODER, fields), pcm=pcm)


_SESSION_OPENED_DECODER = msgspec.json.Decoder(SessionOpened)
_AUDIO_META_DECODER = msgspec.json.Decoder(_ReceivedAt)
_RECEIVED_DECODER = msgspec.json.Decoder(FinalizeRequested)
_CLOSED_DECODER = msgspec.json.Decoder(StreamClosed)
_JOB_DECODER = msgspec.json.Decoder(TranscriptionJob)


# --- the session state hash: segmenter -> transcribers (``shared.keys.session_state``) ---


class SessionState:
    """The fields of a session's state hash: the segmenter writes them as an utterance moves
    on, transcribers read them to skip what is stale."""

    UTTERANCE = "u"
    """Index of the open utterance."""
    REVISION = "rev"
    """Revision of its live speculation (-1: none)."""
    PARTIAL_SEQ = "pseq"
    """Sequence of its newest partial."""


# --- pub/sub events: workers -> the ingest node holding the session -----------------------
#
# msgspec Structs: frozen, typed, tagged by ``kind`` and versioned by ``v``; one decoder for
# the whole channel (:func:`decode_event`). Nested records (words, results, commits,
# participants) are untagged Structs inside them.


class Word(msgspec.Struct, frozen=True):
    word: str
    start: float
    end: float
    probability: float


class TranscriptResult(msgspec.Struct, frozen=True):
    """What a transcriber made of one job. Times are seconds of the session's audio."""

    session_id: str
    utterance_index: int
    partial_seq: int
    text: str
    start: float
    end: float
    language: str
    language_probability: float
    words: tuple[Word, ...] = ()
    model_started_at: float = 0.0
    model_done_at: float = 0.0
    wall_start: float = 0.0
    """Wall time (Unix seconds) ingest received the audio at ``start``: one timeline for the
    speakers of a room, whose ``start`` counts from each one's own stream (0: unknown)."""

    def encode(self) -> bytes:
        return _ENCODER.encode(self)


class Commit(msgspec.Struct, frozen=True):
    """The segmenter's decision that an utterance has ended. Redis scripts read its
    ``revision`` with ``cjson`` (:mod:`shared.redis_client`)."""

    utterance_index: int
    revision: int
    endpoint_at: float
    committed_at: float
    ended_by: str = ""
    """What ended the utterance: ``pause``, ``finalize``, ``max_length``, ``end_of_stream``."""

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        return _decode_with(_COMMIT_DECODER, data, "commit")


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Every event of the channel: ``v`` is the schema version, ``kind`` its tag."""

    v: Literal[1] = SCHEMA_VERSION

    def encode(self) -> bytes:
        return _ENCODER.encode(self)


class PartialTranscript(_Event, frozen=True, tag="partial"):
    result: TranscriptResult


class FinalTranscript(_Event, frozen=True, tag="final"):
    """Published exactly once per committed utterance (text may be empty: nothing was said)."""

    result: TranscriptResult
    commit: Commit

    def encode(self) -> bytes:
        return final_envelope(self.commit.encode(), self.result.encode())


FINAL_ENVELOPE_HEAD = b'{"v":1,"kind":"final","commit":'
FINAL_ENVELOPE_MIDDLE = b',"result":'
FINAL_ENVELOPE_TAIL = b"}"


def final_envelope(commit_json: bytes, result_json: bytes) -> bytes:
    """Built by concatenation so that a Redis script can assemble it from stored parts."""
    return (
        FINAL_ENVELOPE_HEAD
        + commit_json
        + FINAL_ENVELOPE_MIDDLE
        + result_json
        + FINAL_ENVELOPE_TAIL
    )


class TurnTranscript(_Event, frozen=True, tag="turn"):
    """The settled text of turn ``turn_index``: utterances ``first_utterance`` to
    ``last_utterance`` decoded as a whole. Published once per turn (at least once: a
    reclaimed job may publish again; the edge keeps the first). ``fallback``: no settled
    text could be made (the decoding looped, or every attempt failed); the finals stand."""

    result: TranscriptResult
    turn_index: int
    first_utterance: int
    last_utterance: int
    fallback: bool
    endpoint_at: float
    """Wall time the turn's end was decided (its pause reached the turn gap)."""
    withheld: bool = False
    """The model withheld what it wrote as speech in a language it does not know: the turn's
    text stands even where it says less than its finals did."""


class SegmentationFinished(_Event, frozen=True, tag="segmentation.finished"):
    """The segmenter has flushed a closed stream; ``utterances`` finals and ``turns`` turns
    were committed (``turns`` -1: a segmenter without turns)."""

    session_id: str
    utterances: int
    turns: int = -1


class UtteranceFailed(_Event, frozen=True, tag="utterance.failed"):
    """A final could not be produced; the client gets an error instead of waiting forever."""

    session_id: str
    utterance_index: int
    message: str


SessionEvent = (
    PartialTranscript | FinalTranscript | TurnTranscript | SegmentationFinished | UtteranceFailed
)


# --- room events: an ingest connection -> every participant's connection -----------------


class Participant(msgspec.Struct, frozen=True):
    session_id: str
    name: str
    listener: bool
    """Joined without a microphone."""
    read: str = ""
    """The language the participant reads ('' : whatever is spoken): the room translates
    every speaker's turns into each of its members' reading languages."""

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Participant:
        return _decode_with(_PARTICIPANT_DECODER, data, "participant")


class RoomTranscript(_Event, frozen=True, tag="room.transcript"):
    """A participant's transcript, already ordered and deduplicated by its own connection."""

    speaker: Participant
    is_final: bool
    result: TranscriptResult


class RoomPresence(_Event, frozen=True, tag="room.presence"):
    joined: bool
    """True: joined; False: left."""
    participant: Participant


# --- translations: ingest -> rq queue -> translator -> session and room channels ----------


class TranslationJob(msgspec.Struct, frozen=True):
    """The argument of one rq translation job (a JSON string, so rq never pickles our types)."""

    session_id: str
    room: str | None
    speaker: str
    utterance_index: int
    text: str
    source_language: str
    target_language: str
    enqueued_at: float
    turn_index: int = -1
    """The turn translated (``utterance_index``: its last utterance); -1: one final."""
    v: Literal[1] = SCHEMA_VERSION

    def encode(self) -> str:
        return _ENCODER.encode(self).decode()

    @classmethod
    def decode(cls, data: str) -> TranslationJob:
        return _decode_with(_TRANSLATION_JOB_DECODER, data, "translation job")


class TranslationDone(_Event, frozen=True, tag="translation"):
    """A translation, or why there is none (``error_code`` set, ``text`` empty)."""

    session_id: str
    speaker: str
    utterance_index: int
    source_language: str
    target_language: str
    text: str
    error_code: str = ""
    error_message: str = ""
    latency_s: float = 0.0
    turn_index: int = -1


class TranslationTargets(msgspec.Struct, frozen=True):
    """What a speaking session's turns are translated into, as its ingest connection last
    decided (``shared.keys.translation_targets``): the transcriber reads it to translate
    into English with Whisper itself (``whisper``), the other languages go to the translator
    queue."""

    room: str | None
    speaker: str
    languages: tuple[str, ...]
    whisper: bool = False
    """Whether English is translated by the transcriber's own model (Whisper's translate
    task) rather than by the translator."""
    v: Literal[1] = SCHEMA_VERSION

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> TranslationTargets:
        return _decode_with(_TARGETS_DECODER, data, "translation targets")


class RoomTurn(_Event, frozen=True, tag="room.turn"):
    """A participant's turn as its own connection delivered it: ``utterance_indexes`` are
    the speaker's finals (already shared) that it settles."""

    speaker: Participant
    turn_index: int
    utterance_indexes: tuple[int, ...]
    result: TranscriptResult


RoomEvent = RoomTranscript | RoomPresence | RoomTurn
PipelineEvent = SessionEvent | RoomEvent | TranslationDone
RoomLogged = RoomTranscript | RoomTurn | TranslationDone
"""What a room's log (``shared.keys.room_log``) holds."""

_EVENT_DECODER = msgspec.json.Decoder(PipelineEvent)
_COMMIT_DECODER = msgspec.json.Decoder(Commit)
_PARTICIPANT_DECODER = msgspec.json.Decoder(Participant)
_TRANSLATION_JOB_DECODER = msgspec.json.Decoder(TranslationJob)
_TARGETS_DECODER = msgspec.json.Decoder(TranslationTargets)


def _decode_with(decoder: msgspec.json.Decoder[_T], data: bytes | str, what: str) -> _T:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SchemaError(f"bad {what}: {exc}") from exc


def decode_event(data: bytes) -> PipelineEvent:
    """Any event of a session or room channel; a :class:`SchemaError` for anything else
    (not JSON, another version, an unknown kind, a field missing or of the wrong type)."""
    return _decode_with(_EVENT_DECODER, data, "event")


# --- operations: every part -> Redis, read by ``streamscribe status`` ----------------------


class PartHeartbeat(msgspec.Struct, frozen=True):
    """A part says it is alive, how to scrape it and how loaded it is."""

    kind: str
    """``ingest``, ``segmenter``, ``transcriber`` or ``translator``."""
    part_id: str
    host: str
    pid: int
    started_at: float
    sent_at: float
    metrics_url: str
    ready: bool
    sessions: int
    jobs_done: int
    v: Literal[1] = SCHEMA_VERSION
    jobs: str = "all"
    """A transcriber's: ``all``, ``live`` (no upload windows) or ``files`` (those only)."""

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> PartHeartbeat:
        return _decode_with(_HEARTBEAT_DECODER, data, "heartbeat")


_HEARTBEAT_DECODER = msgspec.json.Decoder(PartHeartbeat)


@dataclass(frozen=True, slots=True)
class LatencySample:
    """One delivered final: when, and seconds from the end of its speech to its sending."""

    at: float
    seconds: float

    def encode(self) -> bytes:
        return f"{self.at:.3f} {self.seconds:.4f}".encode()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        try:
            at, seconds = data.split()
            return cls(float(at), float(seconds))
        except ValueError as exc:
            raise SchemaError(f"bad latency sample {data[:40]!r}") from exc
