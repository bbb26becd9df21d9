"""gRPC API v1 (``proto/streamscribe/v1/transcription.proto``) to and from protocol v1.

Pure translation, no I/O: a client's :class:`StreamConfig` as the v1 query string it stands
for (so it is validated, and refused, exactly as ``/v1/stream`` is), its requests as v1
frames, the session's v1 messages as :class:`StreamResponse`, and v1 close codes as gRPC
status codes.
"""

from __future__ import annotations

import grpc
from msgspec import UnsetType

from ingest.auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED
from ingest.limits import CLOSE_TIMEOUT, CLOSE_TOO_FAST
from ingest.protocol import (
    CLOSE_BAD_PARAMETER,
    CLOSE_INTERNAL,
    CLOSE_INVALID_PAYLOAD,
    CLOSE_NORMAL,
    CLOSE_OVERLOADED,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    bad_parameter,
)
from shared.client_messages import (
    Error,
    RoomJoin,
    RoomLeave,
    RoomParticipants,
    ServerMessage,
    SessionBegin,
    SessionEnd,
    Transcript,
    Translation,
    Turn,
    WordTimes,
)
from shared.errors import ProtocolError
from shared.grpc_api import transcription_pb2 as pb

FINALIZE_FRAME = '{"type":"finalize"}'
CLOSE_FRAME = '{"type":"close"}'

_STATUS = {
    CLOSE_NORMAL: grpc.StatusCode.OK,
    CLOSE_UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    CLOSE_FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    CLOSE_BAD_PARAMETER: grpc.StatusCode.INVALID_ARGUMENT,
    CLOSE_UNSUPPORTED: grpc.StatusCode.INVALID_ARGUMENT,
    CLOSE_INVALID_PAYLOAD: grpc.StatusCode.INVALID_ARGUMENT,
    CLOSE_TOO_BIG: grpc.StatusCode.INVALID_ARGUMENT,
    CLOSE_TOO_FAST: grpc.StatusCode.RESOURCE_EXHAUSTED,
    CLOSE_OVERLOADED: grpc.StatusCode.UNAVAILABLE,
    CLOSE_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    CLOSE_INTERNAL: grpc.StatusCode.INTERNAL,
}


def status_of(close_code: int) -> grpc.StatusCode:
    """The gRPC status a session closed with protocol v1's ``close_code`` ends its call with."""
    return _STATUS.get(close_code, grpc.StatusCode.UNKNOWN)


def config_query(config: pb.StreamConfig) -> dict[str, list[str]]:
    """The ``/v1/stream`` query string a config stands for (its unset fields left out)."""
    query: dict[str, list[str]] = {}
    if config.sample_rate:
        query["sample_rate"] = [str(config.sample_rate)]
    for name, text in (
        ("encoding", config.encoding),
        ("language", config.language),
        ("name", config.name),
        ("room", config.room),
    ):
        if text:
            query[name] = [text]
    if config.HasField("partials"):
        query["partials"] = ["true" if config.partials else "false"]
    if config.listen:
        query["listen"] = ["true"]
    if config.translate:
        query["translate"] = [",".join(config.translate)]
    if config.vocabulary:
        if any("," in term for term in config.vocabulary):
            raise bad_parameter("vocabulary", "a term may not contain a comma")
        query["vocabulary"] = [",".join(config.vocabulary)]
    return query


def first_config(request: pb.StreamRequest) -> pb.StreamConfig:
    """The config a call must begin with."""
    if request.WhichOneof("request") != "config":
        raise ProtocolError(
            "invalid_message", "the first request must be a config", CLOSE_UNSUPPORTED
        )
    return request.config


def frame_of(request: pb.StreamRequest) -> str | bytes:
    """A request after the config as the v1 frame it stands for: audio, or a command."""
    kind = request.WhichOneof("request")
    if kind == "audio":
        return request.audio
    if kind == "finalize":
        return FINALIZE_FRAME
    if kind == "close":
        return CLOSE_FRAME
    problem = "a config after the first request" if kind == "config" else "an empty request"
    raise ProtocolError("invalid_message", problem, CLOSE_UNSUPPORTED)


def response_of(message: ServerMessage) -> pb.StreamResponse:
    """A v1 message as the call's response (the same fields; unset ones left empty)."""
    response = pb.StreamResponse(session_id=message.session_id, seq=message.seq)
    match message:
        case SessionBegin():
            response.session_begin.CopyFrom(
                pb.SessionBegin(
                    protocol=message.protocol,
                    sample_rate=message.sample_rate,
                    encoding=message.encoding,
                    language=message.language,
                    model=message.model,
                    room=message.room or "",
                    listen=message.listen,
                    translate=message.translate,
                    partials=message.partials,
                    name=message.name,
                )
            )
        case Transcript():
            response.transcript.CopyFrom(_transcript(message))
        case Turn():
            response.turn.CopyFrom(
                pb.Turn(
                    turn_id=message.turn_id,
                    utterance_ids=message.utterance_ids,
                    text=message.text,
                    start=message.start,
                    end=message.end,
                    language=message.language,
                    language_probability=message.language_probability,
                    words=_words(message.words),
                    speaker=message.speaker,
                    settled=message.settled,
                    wall_start=_number(message.wall_start),
                    history=message.history is True,
                )
            )
        case RoomJoin() | RoomLeave():
            presence = pb.Presence(room=message.room, name=message.name, listener=message.listener)
            joined = isinstance(message, RoomJoin)
            (response.room_join if joined else response.room_leave).CopyFrom(presence)
        case RoomParticipants():
            members = [
                pb.Member(session_id=m.session_id, name=m.name, listener=m.listener)
                for m in message.participants
            ]
            response.room_participants.CopyFrom(
                pb.Participants(room=message.room, participants=members)
            )
        case Translation():
            response.translation.CopyFrom(_translation(message))
        case Error():
            response.error.CopyFrom(
                pb.Error(
                    code=message.code,
                    message=message.message,
                    utterance_id=_text(message.utterance_id),
                )
            )
        case SessionEnd():
            response.session_end.CopyFrom(
                pb.SessionEnd(duration_s=message.duration_s, utterances=message.utterances)
            )
    return response


def _transcript(message: Transcript) -> pb.Transcript:
    words = () if isinstance(message.words, UnsetType) else message.words
    probability = message.language_probability
    return pb.Transcript(
        is_final=message.is_final,
        utterance_id=message.utterance_id,
        text=message.text,
        start=message.start,
        end=message.end,
        speaker=message.speaker,
        language=_text(message.language),
        language_probability=probability if isinstance(probability, float) else 0.0,
        words=_words(words),
        server_timing=message.server_timing if isinstance(message.server_timing, dict) else {},
        ended_by=_text(message.ended_by),
        wall_start=_number(message.wall_start),
        history=message.history is True,
    )


def _translation(message: Translation) -> pb.Translation:
    error = message.error
    return pb.Translation(
        utterance_id=message.utterance_id,
        source_language=message.source_language,
        target_language=message.target_language,
        text=message.text,
        speaker=message.speaker,
        error_code="" if isinstance(error, UnsetType) else error.code,
        error_message="" if isinstance(error, UnsetType) else error.message,
        turn_id=_text(message.turn_id),
        history=message.history is True,
    )


def _words(words: tuple[WordTimes, ...]) -> list[pb.Word]:
    return [
        pb.Word(word=w.word, start=w.start, end=w.end, probability=w.probability) for w in words
    ]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _number(value: object) -> float:
    return value if isinstance(value, float) else 0.0
