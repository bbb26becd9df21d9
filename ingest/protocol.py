"""Protocol v1 without I/O: parameters, client text frames, and the server's messages."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec
from msgspec import UNSET

from ingest.delivery import ReleasedTurn
from shared.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Encoding
from shared.client_messages import (
    Error,
    Member,
    RoomJoin,
    RoomLeave,
    RoomParticipants,
    SessionBegin,
    SessionEnd,
    Transcript,
    Translation,
    TranslationError,
    Turn,
    WordTimes,
    encode,
)
from shared.errors import ProtocolError
from shared.languages import WHISPER_LANGUAGES
from shared.schema import Participant, RoomTurn, TranscriptResult, TranslationDone

PROTOCOL_VERSION = 1

CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_OVERLOADED = 1013
CLOSE_BAD_PARAMETER = 4400

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
_DIGITS = re.compile(r"[0-9]+")
"""ASCII digits only: ``str.isdigit`` also takes superscripts, circled and full-width ones."""
KNOWN_PARAMETERS = frozenset(
    {
        "sample_rate",
        "encoding",
        "language",
        "room",
        "name",
        "translate",
        "partials",
        "token",
        "resume",
        "last_seq",
        "listen",
        "vocabulary",
        "read",
    }
)
MAX_ROOM_LENGTH = 128
MAX_TEXT_CHARACTERS = 4096
"""Longest text frame taken (the client's messages are a few dozen characters)."""
MAX_TRANSLATIONS = 5
MAX_VOCABULARY_TERMS = 100
MAX_VOCABULARY_CHARACTERS = 500
"""Of all the terms together: Whisper's prompt holds 223 tokens, shared with the context."""


@dataclass(frozen=True, slots=True)
class StreamParams:
    sample_rate: int
    encoding: Encoding
    language: str | None
    """None: detect the language."""
    partials: bool
    name: str
    room: str | None = None
    listen: bool = False
    """Join the room without sending audio."""
    translate: tuple[str, ...] = ()
    """Target languages for translations of this session's finals."""
    token: str | None = field(default=None, repr=False)
    """The access token from the query string, if any (never logged)."""
    resume: str | None = field(default=None, repr=False)
    """The resume token of the session to take up again (never logged)."""
    last_seq: int = 0
    """With ``resume``: the highest seq the client holds."""
    vocabulary: str = ""
    """Terms the speaker will say, comma-separated, for Whisper's hot words."""
    read: str = ""
    """The language this participant reads ('': whatever is spoken): the room translates
    every speaker's turns into it, and this participant receives those translations only."""


def bad_parameter(name: str, problem: str) -> ProtocolError:
    return ProtocolError("invalid_parameter", f"{name}: {problem}", CLOSE_BAD_PARAMETER)


def spoken_language(raw: str, *, english_only: bool) -> str | None:
    """The ``language`` parameter: a code, or None to detect (``auto``; also a multilingual
    model's default). An English-only model takes only English, and detects nothing."""
    if raw == "":
        return "en" if english_only else None
    if raw == "auto" and english_only:
        raise bad_parameter(
            "language", "auto: this server's model is English-only and detects no language"
        )
    if raw == "auto":
        return None
    if not _LANGUAGE.match(raw):
        raise bad_parameter("language", f"not a language code: {raw!r}")
    if english_only and raw != "en":
        raise bad_parameter("language", "this server's model is English-only")
    return raw


def parse_stream_params(query: Mapping[str, Sequence[str]], *, english_only: bool) -> StreamParams:
    """Validate the query string of ``/v1/stream``; the error names the parameter."""
    for name, values in query.items():
        if name not in KNOWN_PARAMETERS:
            raise bad_parameter(name, "unknown parameter")
        if len(values) != 1:
            raise bad_parameter(name, "given more than once")
    value = {name: values[0] for name, values in query.items()}

    raw_rate = value.get("sample_rate", "16000")
    if not _DIGITS.fullmatch(raw_rate) or len(raw_rate) > 6:
        raise bad_parameter("sample_rate", f"not an integer: {raw_rate!r}")
    sample_rate = int(raw_rate)
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise bad_parameter("sample_rate", f"must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE}")

    raw_encoding = value.get("encoding", Encoding.PCM_S16LE.value)
    try:
        encoding = Encoding(raw_encoding)
    except ValueError:
        allowed = ", ".join(e.value for e in Encoding)
        raise bad_parameter("encoding", f"must be one of {allowed}") from None

    language = spoken_language(value.get("language", ""), english_only=english_only)

    partials = _flag(value, "partials", default=True)
    listen = _flag(value, "listen", default=False)
    room = value.get("room")
    if room is not None:
        if not room.strip() or len(room) > MAX_ROOM_LENGTH or not room.isprintable():
            raise bad_parameter("room", f"must be 1-{MAX_ROOM_LENGTH} printable characters")
    elif listen:
        raise bad_parameter("listen", "a listener must join a room")

    name = display_name(value.get("name", ""))
    if len(name) > 64:
        raise bad_parameter("name", "longer than 64 characters")

    translate: list[str] = []
    for code in filter(None, (c.strip() for c in value.get("translate", "").split(","))):
        _check_language("translate", code)
        if code not in translate:
            translate.append(code)
    if len(translate) > MAX_TRANSLATIONS:
        raise bad_parameter("translate", f"at most {MAX_TRANSLATIONS} languages")
    if translate and listen:
        raise bad_parameter("translate", "a listener sends no speech to translate")

    read = value.get("read", "").strip()
    if read:
        _check_language("read", read)

    resume, last_seq = _resume(value)
    vocabulary = vocabulary_of(value.get("vocabulary", "").split(","), parameter="vocabulary")

    return StreamParams(
        sample_rate=sample_rate,
        encoding=encoding,
        language=language,
        partials=partials,
        name=name,
        room=room,
        listen=listen,
        translate=tuple(translate),
        token=value.get("token") or None,
        resume=resume,
        last_seq=last_seq,
        vocabulary=vocabulary,
        read=read,
    )


def _check_language(parameter: str, code: str) -> None:
    """A language a translator can serve: one of Whisper's (``GET /v1/languages``), in its
    base code or a regional form (``pt-BR``). Any other would be asked of the translator for
    every turn and only ever fail."""
    if not _LANGUAGE.match(code):
        raise bad_parameter(parameter, f"not a language code: {code!r}")
    if code.split("-", 1)[0].lower() not in WHISPER_LANGUAGES:
        raise bad_parameter(
            parameter, f"no translation into {code!r}: GET /v1/languages lists the languages"
        )


def vocabulary_of(terms: Sequence[str], *, parameter: str) -> str:
    """Terms cleaned of control characters, repeats dropped, bounded; joined with commas."""
    kept = dict.fromkeys(t for t in map(shown_text, terms) if t)
    if len(kept) > MAX_VOCABULARY_TERMS or sum(map(len, kept)) > MAX_VOCABULARY_CHARACTERS:
        raise bad_parameter(
            parameter,
            f"at most {MAX_VOCABULARY_TERMS} terms of {MAX_VOCABULARY_CHARACTERS} characters",
        )
    return ", ".join(kept)


def _resume(value: Mapping[str, str]) -> tuple[str | None, int]:
    resume = value.get("resume") or None
    raw_last_seq = value.get("last_seq")
    if raw_last_seq is not None and resume is None:
        raise bad_parameter("last_seq", "only with resume")
    if resume is not None and raw_last_seq is None:
        raise bad_parameter("resume", "needs last_seq")
    if raw_last_seq is not None and (not _DIGITS.fullmatch(raw_last_seq) or len(raw_last_seq) > 12):
        raise bad_parameter("last_seq", "must be a non-negative integer")
    return resume, int(raw_last_seq or 0)


def _flag(value: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = value.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false", "1", "0"):
        raise bad_parameter(name, "must be true or false")
    return raw.lower() in ("true", "1")


class ClientCommand(StrEnum):
    FINALIZE = "finalize"
    CLOSE = "close"
    KEEPALIVE = "keepalive"


def shown_text(raw: str) -> str:
    """Text as shown to others: control, format (e.g. right-to-left override) and other
    invisible characters removed, runs of white space made one space."""
    kept = "".join(c for c in raw if c.isspace() or unicodedata.category(c)[0] != "C")
    return " ".join(kept.split())


def display_name(raw: str) -> str:
    """A name as shown to others (:func:`shown_text`), ``anonymous`` for none."""
    return shown_text(raw) or "anonymous"


def parse_client_text(text: str) -> ClientCommand:
    if len(text) > MAX_TEXT_CHARACTERS:
        raise ProtocolError(
            "invalid_message",
            f"text frame longer than {MAX_TEXT_CHARACTERS} characters",
            CLOSE_UNSUPPORTED,
        )
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an integer of thousands of digits, nesting
        raise ProtocolError(
            "invalid_message", "text frame is not JSON", CLOSE_UNSUPPORTED
        ) from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError(
            "invalid_message", 'text frame must be an object with a "type"', CLOSE_UNSUPPORTED
        )
    try:
        return ClientCommand(message["type"])
    except ValueError:
        raise ProtocolError(
            "invalid_message", f"unknown message type {message['type']!r}", CLOSE_UNSUPPORTED
        ) from None


def check_audio_frame(payload: bytes, encoding: Encoding, max_bytes: int) -> None:
    if len(payload) > max_bytes:
        raise ProtocolError(
            "frame_too_large",
            f"audio frame of {len(payload)} bytes exceeds {max_bytes}",
            CLOSE_TOO_BIG,
        )
    if len(payload) % encoding.sample_width:
        raise ProtocolError(
            "invalid_audio",
            f"{len(payload)} bytes is not a whole number of {encoding.value} samples",
            CLOSE_INVALID_PAYLOAD,
        )


def utterance_id(session_id: str, index: int) -> str:
    return f"{session_id}-{index}"


def turn_id(session_id: str, index: int) -> str:
    return f"{session_id}-t{index}"


@dataclass(frozen=True, slots=True)
class TurnMessage:
    text: str
    """The message as sent."""
    result: TranscriptResult
    """What it says: the settled text, or the finals' own where the turn fell back to them."""


def settled_result(released: ReleasedTurn) -> TranscriptResult:
    """The turn's text, or its finals' text joined where it could not be settled."""
    turn = released.turn
    if not turn.fallback:
        return turn.result
    finals = released.finals
    return msgspec.structs.replace(
        turn.result,
        text=" ".join(f.text for f in finals),
        start=finals[0].start if finals else turn.result.start,
        end=finals[-1].end if finals else turn.result.end,
        language=finals[0].language if finals else turn.result.language,
        words=tuple(w for f in finals for w in f.words),
        wall_start=finals[0].wall_start if finals else turn.result.wall_start,
    )


def _words(result: TranscriptResult) -> tuple[WordTimes, ...]:
    return tuple(WordTimes(w.word, w.start, w.end, w.probability) for w in result.words)


class MessageBuilder:
    """Builds the server's messages for one connection (``shared.client_messages``), numbering
    them with ``seq``; each method returns the text frame."""

    def __init__(self, session_id: str, *, last_seq: int = 0) -> None:
        """``last_seq``: the seq of the session's last message (of a resumed session)."""
        self.session_id = session_id
        self._seq = last_seq

    @property
    def seq(self) -> int:
        """The seq of the latest message built."""
        return self._seq

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def session_begin(
        self, params: StreamParams, model: str, resume_token: str | None = None
    ) -> str:
        return encode(self._begin(params, model, resume_token, seq=self._next()))

    def _begin(
        self, params: StreamParams, model: str, resume_token: str | None, *, seq: int
    ) -> SessionBegin:
        return SessionBegin(
            self.session_id,
            seq,
            protocol=PROTOCOL_VERSION,
            resume_token=resume_token,
            sample_rate=params.sample_rate,
            encoding=params.encoding.value,
            language=params.language or "auto",
            model=model,
            room=params.room,
            listen=params.listen,
            translate=params.translate,
            partials=params.partials,
            name=params.name,
            read=params.read or UNSET,
        )

    def session_resumed(
        self, params: StreamParams, model: str, resume_token: str, *, client_seq: int, samples: int
    ) -> str:
        """The first message of a resumed connection: numbered with the client's own last seq
        (it is not a new message; the missed ones follow with their own numbers), saying how
        many of the client's samples the server holds, so the client resends the rest."""
        begin = self._begin(params, model, resume_token, seq=client_seq)
        return encode(
            msgspec.structs.replace(
                begin, resumed=True, samples_received=samples, last_seq=self._seq
            )
        )

    def partial(self, result: TranscriptResult, speaker: str) -> str:
        return encode(self._transcript(result, speaker, is_final=False))

    def final(
        self,
        result: TranscriptResult,
        speaker: str,
        timing: Mapping[str, float] | None = None,
        ended_by: str = "",
        *,
        history: bool = False,
    ) -> str:
        final = self._transcript(result, speaker, is_final=True)
        return encode(
            msgspec.structs.replace(
                final,
                language=result.language,
                language_probability=result.language_probability,
                words=_words(result),
                server_timing=dict(timing) if timing else UNSET,
                ended_by=ended_by or UNSET,
                wall_start=result.wall_start or UNSET,
                history=history or UNSET,
            )
        )

    def _transcript(self, result: TranscriptResult, speaker: str, *, is_final: bool) -> Transcript:
        return Transcript(
            result.session_id,
            self._next(),
            is_final=is_final,
            utterance_id=utterance_id(result.session_id, result.utterance_index),
            text=result.text,
            start=result.start,
            end=result.end,
            speaker=speaker,
        )

    def turn(self, released: ReleasedTurn, speaker: str) -> TurnMessage:
        result = settled_result(released)
        sid = result.session_id
        text = self._turn(
            result,
            turn_id(sid, released.turn.turn_index),
            tuple(utterance_id(sid, i) for i in released.utterance_indexes),
            speaker,
            settled=not released.turn.fallback,
        )
        return TurnMessage(text, result)

    def room_turn(self, turn: RoomTurn, *, history: bool = False) -> str:
        sid = turn.speaker.session_id
        return self._turn(
            turn.result,
            turn_id(sid, turn.turn_index),
            tuple(utterance_id(sid, i) for i in turn.utterance_indexes),
            turn.speaker.name,
            settled=True,
            history=history,
        )

    def _turn(
        self,
        result: TranscriptResult,
        the_turn_id: str,
        utterance_ids: tuple[str, ...],
        speaker: str,
        *,
        settled: bool,
        history: bool = False,
    ) -> str:
        return encode(
            Turn(
                result.session_id,
                self._next(),
                turn_id=the_turn_id,
                utterance_ids=utterance_ids,
                text=result.text,
                start=result.start,
                end=result.end,
                language=result.language,
                language_probability=result.language_probability,
                words=_words(result),
                speaker=speaker,
                settled=settled,
                wall_start=result.wall_start or UNSET,
                history=history or UNSET,
            )
        )

    def presence(self, room: str, joined: bool, participant: Participant) -> str:
        kind = RoomJoin if joined else RoomLeave
        return encode(
            kind(
                participant.session_id,
                self._next(),
                room=room,
                name=participant.name,
                listener=participant.listener,
                read=participant.read or UNSET,
            )
        )

    def participants(self, room: str, participants: Sequence[Participant]) -> str:
        members = tuple(Member(p.session_id, p.name, p.listener, p.read) for p in participants)
        return encode(RoomParticipants(self.session_id, self._next(), room, members))

    def translation(self, done: TranslationDone, *, history: bool = False) -> str:
        error = TranslationError(done.error_code, done.error_message) if done.error_code else None
        the_turn_id = turn_id(done.session_id, done.turn_index) if done.turn_index >= 0 else None
        return encode(
            Translation(
                done.session_id,
                self._next(),
                utterance_id=utterance_id(done.session_id, done.utterance_index),
                source_language=done.source_language,
                target_language=done.target_language,
                text=done.text,
                speaker=done.speaker,
                error=UNSET if error is None else error,
                turn_id=UNSET if the_turn_id is None else the_turn_id,
                history=history or UNSET,
            )
        )

    def error(self, code: str, message: str, *, utterance_id: str | None = None) -> str:
        return encode(
            Error(
                self.session_id,
                self._next(),
                code=code,
                message=message,
                utterance_id=UNSET if utterance_id is None else utterance_id,
            )
        )

    def session_end(self, duration_s: float, utterances: int) -> str:
        return encode(
            SessionEnd(
                self.session_id,
                self._next(),
                duration_s=round(duration_s, 3),
                utterances=utterances,
            )
        )
