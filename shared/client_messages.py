"""The server's messages to clients (protocol v1, ``../shared/PROTOCOL.md``), typed.

msgspec Structs tagged by ``type``; ingest builds them (``ingest.protocol.MessageBuilder``)
and encodes them with :func:`encode`; clients decode any of them with :func:`decode` into
:data:`ServerMessage`. Optional fields are left out of the JSON when unset. Every message
carries ``session_id`` (whose it is: in a room, the speaker's) and ``seq``, increasing per
connection.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec
from msgspec import UNSET, UnsetType

from shared.errors import SchemaError


class WordTimes(msgspec.Struct, frozen=True):
    word: str
    start: float
    end: float
    probability: float


class _Message(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    session_id: str
    seq: int


class SessionBegin(_Message, frozen=True, tag="session.begin"):
    protocol: int
    resume_token: str | None
    sample_rate: int
    encoding: str
    language: str
    """The spoken language, or ``auto``."""
    model: str
    room: str | None
    listen: bool
    translate: tuple[str, ...]
    partials: bool
    name: str
    read: str | UnsetType = UNSET
    """The language this participant reads: other speakers' turns come translated into it."""
    resumed: bool | UnsetType = UNSET
    """A resumed connection's greeting: then ``samples_received`` and ``last_seq`` too."""
    samples_received: int | UnsetType = UNSET
    last_seq: int | UnsetType = UNSET


class Transcript(_Message, frozen=True, tag="transcript"):
    """A partial (``is_final`` false: text and times only) or a final (with its language and
    words, exactly once per ``utterance_id``)."""

    is_final: bool
    utterance_id: str
    text: str
    start: float
    end: float
    speaker: str
    language: str | UnsetType = UNSET
    language_probability: float | UnsetType = UNSET
    words: tuple[WordTimes, ...] | UnsetType = UNSET
    server_timing: dict[str, float] | UnsetType = UNSET
    ended_by: str | UnsetType = UNSET
    """Finals: ``pause``, ``finalize`` (the client's), ``max_length`` or ``end_of_stream``."""
    wall_start: float | UnsetType = UNSET
    """Finals: the wall time (Unix seconds) the server received the audio at ``start``, one
    timeline for every speaker of a room (``start`` counts from the speaker's own stream)."""
    history: bool | UnsetType = UNSET
    """True for the room's earlier finals sent to a participant joining it."""


class Turn(_Message, frozen=True, tag="turn"):
    """The settled text of the finals ``utterance_ids`` (``settled`` false: they could not be
    settled and the turn repeats them)."""

    turn_id: str
    utterance_ids: tuple[str, ...]
    text: str
    start: float
    end: float
    language: str
    language_probability: float
    words: tuple[WordTimes, ...]
    speaker: str
    settled: bool
    wall_start: float | UnsetType = UNSET
    """As a final's: the wall time the server received the audio at ``start``."""
    history: bool | UnsetType = UNSET
    """True for the room's earlier turns sent to a participant joining it."""


class _Presence(_Message, frozen=True):
    """``session_id``: who joined or left."""

    room: str
    name: str
    listener: bool
    read: str | UnsetType = UNSET
    """The language the participant reads (left out: whatever is spoken)."""


class RoomJoin(_Presence, frozen=True, tag="room.join"):
    pass


class RoomLeave(_Presence, frozen=True, tag="room.leave"):
    pass


class Member(msgspec.Struct, frozen=True, omit_defaults=True):
    session_id: str
    name: str
    listener: bool
    read: str = ""
    """The language the member reads (left out: whatever is spoken)."""


class RoomParticipants(_Message, frozen=True, tag="room.participants"):
    room: str
    participants: tuple[Member, ...]


class TranslationError(msgspec.Struct, frozen=True):
    code: str
    message: str


class Translation(_Message, frozen=True, tag="translation"):
    utterance_id: str
    source_language: str
    target_language: str
    text: str
    speaker: str
    error: TranslationError | UnsetType = UNSET
    """Set, with ``text`` empty, where there is no translation."""
    turn_id: str | UnsetType = UNSET
    """Set where a turn was translated (``utterance_id``: its last final)."""
    history: bool | UnsetType = UNSET
    """True for the room's earlier translations sent to a participant joining it."""


class Error(_Message, frozen=True, tag="error"):
    code: str
    message: str
    utterance_id: str | UnsetType = UNSET
    """With ``transcription_failed``: the utterance that has no final."""


class SessionEnd(_Message, frozen=True, tag="session.end"):
    duration_s: float
    utterances: int


ServerMessage = (
    SessionBegin
    | Transcript
    | Turn
    | RoomJoin
    | RoomLeave
    | RoomParticipants
    | Translation
    | Error
    | SessionEnd
)

KNOWN_TYPES = frozenset(kind.__struct_config__.tag for kind in get_args(ServerMessage))
"""The ``type`` of every message above."""

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ServerMessage)


def encode(message: ServerMessage) -> str:
    """The text frame that carries ``message``."""
    return _ENCODER.encode(message).decode()


def decode(frame: str | bytes) -> ServerMessage:
    """A server text frame, typed; a :class:`SchemaError` for anything else."""
    try:
        return _DECODER.decode(frame)
    except msgspec.DecodeError as exc:
        raise SchemaError(f"bad server message: {exc}") from exc


def as_dict(message: ServerMessage) -> dict[str, Any]:
    """The message as the JSON object clients see (unset fields left out)."""
    built: dict[str, Any] = msgspec.json.decode(_ENCODER.encode(message))
    return built
