from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamRequest(_message.Message):
    __slots__ = ("config", "audio", "finalize", "close")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FINALIZE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio: bytes
    finalize: Finalize
    close: Close
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., finalize: _Optional[_Union[Finalize, _Mapping]] = ..., close: _Optional[_Union[Close, _Mapping]] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("sample_rate", "encoding", "language", "partials", "name", "room", "listen", "translate", "vocabulary")
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PARTIALS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    sample_rate: int
    encoding: str
    language: str
    partials: bool
    name: str
    room: str
    listen: bool
    translate: _containers.RepeatedScalarFieldContainer[str]
    vocabulary: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sample_rate: _Optional[int] = ..., encoding: _Optional[str] = ..., language: _Optional[str] = ..., partials: _Optional[bool] = ..., name: _Optional[str] = ..., room: _Optional[str] = ..., listen: _Optional[bool] = ..., translate: _Optional[_Iterable[str]] = ..., vocabulary: _Optional[_Iterable[str]] = ...) -> None: ...

class Finalize(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Close(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("session_id", "seq", "session_begin", "transcript", "turn", "room_join", "room_leave", "room_participants", "translation", "error", "session_end")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SESSION_BEGIN_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ROOM_JOIN_FIELD_NUMBER: _ClassVar[int]
    ROOM_LEAVE_FIELD_NUMBER: _ClassVar[int]
    ROOM_PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    TRANSLATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SESSION_END_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    seq: int
    session_begin: SessionBegin
    transcript: Transcript
    turn: Turn
    room_join: Presence
    room_leave: Presence
    room_participants: Participants
    translation: Translation
    error: Error
    session_end: SessionEnd
    def __init__(self, session_id: _Optional[str] = ..., seq: _Optional[int] = ..., session_begin: _Optional[_Union[SessionBegin, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., turn: _Optional[_Union[Turn, _Mapping]] = ..., room_join: _Optional[_Union[Presence, _Mapping]] = ..., room_leave: _Optional[_Union[Presence, _Mapping]] = ..., room_participants: _Optional[_Union[Participants, _Mapping]] = ..., translation: _Optional[_Union[Translation, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., session_end: _Optional[_Union[SessionEnd, _Mapping]] = ...) -> None: ...

class SessionBegin(_message.Message):
    __slots__ = ("protocol", "sample_rate", "encoding", "language", "model", "room", "listen", "translate", "partials", "name")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_FIELD_NUMBER: _ClassVar[int]
    PARTIALS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    protocol: int
    sample_rate: int
    encoding: str
    language: str
    model: str
    room: str
    listen: bool
    translate: _containers.RepeatedScalarFieldContainer[str]
    partials: bool
    name: str
    def __init__(self, protocol: _Optional[int] = ..., sample_rate: _Optional[int] = ..., encoding: _Optional[str] = ..., language: _Optional[str] = ..., model: _Optional[str] = ..., room: _Optional[str] = ..., listen: _Optional[bool] = ..., translate: _Optional[_Iterable[str]] = ..., partials: _Optional[bool] = ..., name: _Optional[str] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("word", "start", "end", "probability")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    word: str
    start: float
    end: float
    probability: float
    def __init__(self, word: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("is_final", "utterance_id", "text", "start", "end", "speaker", "language", "language_probability", "words", "server_timing", "ended_by", "wall_start", "history")
    class ServerTimingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIMING_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_FIELD_NUMBER: _ClassVar[int]
    WALL_START_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    is_final: bool
    utterance_id: str
    text: str
    start: float
    end: float
    speaker: str
    language: str
    language_probability: float
    words: _containers.RepeatedCompositeFieldContainer[Word]
    server_timing: _containers.ScalarMap[str, float]
    ended_by: str
    wall_start: float
    history: bool
    def __init__(self, is_final: _Optional[bool] = ..., utterance_id: _Optional[str] = ..., text: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., speaker: _Optional[str] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., server_timing: _Optional[_Mapping[str, float]] = ..., ended_by: _Optional[str] = ..., wall_start: _Optional[float] = ..., history: _Optional[bool] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("turn_id", "utterance_ids", "text", "start", "end", "language", "language_probability", "words", "speaker", "settled", "wall_start", "history")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    WALL_START_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    utterance_ids: _containers.RepeatedScalarFieldContainer[str]
    text: str
    start: float
    end: float
    language: str
    language_probability: float
    words: _containers.RepeatedCompositeFieldContainer[Word]
    speaker: str
    settled: bool
    wall_start: float
    history: bool
    def __init__(self, turn_id: _Optional[str] = ..., utterance_ids: _Optional[_Iterable[str]] = ..., text: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., speaker: _Optional[str] = ..., settled: _Optional[bool] = ..., wall_start: _Optional[float] = ..., history: _Optional[bool] = ...) -> None: ...

class Presence(_message.Message):
    __slots__ = ("room", "name", "listener")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LISTENER_FIELD_NUMBER: _ClassVar[int]
    room: str
    name: str
    listener: bool
    def __init__(self, room: _Optional[str] = ..., name: _Optional[str] = ..., listener: _Optional[bool] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("session_id", "name", "listener")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LISTENER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    listener: bool
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., listener: _Optional[bool] = ...) -> None: ...

class Participants(_message.Message):
    __slots__ = ("room", "participants")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    room: str
    participants: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, room: _Optional[str] = ..., participants: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class Translation(_message.Message):
    __slots__ = ("utterance_id", "source_language", "target_language", "text", "speaker", "error_code", "error_message", "turn_id", "history")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    utterance_id: str
    source_language: str
    target_language: str
    text: str
    speaker: str
    error_code: str
    error_message: str
    turn_id: str
    history: bool
    def __init__(self, utterance_id: _Optional[str] = ..., source_language: _Optional[str] = ..., target_language: _Optional[str] = ..., text: _Optional[str] = ..., speaker: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., turn_id: _Optional[str] = ..., history: _Optional[bool] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "utterance_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    utterance_id: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., utterance_id: _Optional[str] = ...) -> None: ...

class SessionEnd(_message.Message):
    __slots__ = ("duration_s", "utterances")
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    duration_s: float
    utterances: int
    def __init__(self, duration_s: _Optional[float] = ..., utterances: _Optional[int] = ...) -> None: ...
