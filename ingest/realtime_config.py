"""A Realtime transcription session's configuration: read from ``session.update`` (or the
older ``transcription_session.update``), checked, and written back as the session object of
``session.created`` / ``session.updated``. No I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET

from ingest.protocol import MAX_VOCABULARY_CHARACTERS, vocabulary_of
from ingest.realtime_events import (
    AudioInput,
    NoiseReduction,
    OlderSession,
    Session,
    Transcription,
    TurnDetection,
)
from shared.audio import Encoding
from shared.errors import ProtocolError

REALTIME_RATE = 24000
"""OpenAI's ``audio/pcm`` (and the older ``pcm16``) is 24 kHz."""
_FORMATS = {
    "audio/pcm": (Encoding.PCM_S16LE, REALTIME_RATE),
    "audio/pcmu": (Encoding.MULAW, 8000),
    "audio/pcma": (Encoding.ALAW, 8000),
}
_OLDER_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
_VADS = frozenset({"server_vad", "semantic_vad"})
_INCLUDES = frozenset({"item.input_audio_transcription.logprobs"})


SERVER_VAD = TurnDetection(
    type="server_vad", threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500
)
"""OpenAI's default turn detection (accepted as given: the segmenter decides the turns)."""


class RealtimeError(Exception):
    """A client event that is refused with an ``error`` event; the session carries on."""

    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    audio_format: str = "audio/pcm"
    language: str | None = None
    """None: detected (English on an English-only model)."""
    prompt: str = ""
    keywords: tuple[str, ...] = ()
    model: str = "whisper-1"
    """Reported back; the server's model transcribes."""
    turn_detection: TurnDetection | None = SERVER_VAD
    """None: the client commits (``input_audio_buffer.commit``), no VAD events."""
    noise_reduction: NoiseReduction | None = None
    include: tuple[str, ...] = ()

    @property
    def encoding(self) -> Encoding:
        return _FORMATS[self.audio_format][0]

    @property
    def sample_rate(self) -> int:
        return _FORMATS[self.audio_format][1]

    @property
    def server_vad(self) -> bool:
        return self.turn_detection is not None

    @property
    def vocabulary(self) -> str:
        """The prompt (for Whisper, "a list of keywords") and the keywords, as hot words."""
        terms = [t for t in self.prompt.split(",") if t.strip()] + list(self.keywords)
        return vocabulary_of(terms, parameter="prompt")


def updated(config: RealtimeConfig, session: Session, *, english_only: bool) -> RealtimeConfig:
    """``config`` with what a ``session.update`` sets; a :class:`RealtimeError` naming the
    first field at fault."""
    if session.type != "transcription":
        raise RealtimeError(
            "this server serves transcription sessions only (session.type 'transcription')",
            param="session.type",
        )
    changes: dict[str, Any] = {}
    if session.include is not None:
        changes["include"] = _include(session.include, "session.include")
    audio = session.audio
    given = audio.input if audio is not UNSET else UNSET
    if given is not UNSET:
        changes |= _input_changes(given, "session.audio.input")
    return _checked(dataclasses.replace(config, **changes), english_only=english_only)


def updated_older(
    config: RealtimeConfig, session: OlderSession, *, english_only: bool
) -> RealtimeConfig:
    """The same for ``transcription_session.update``."""
    changes: dict[str, Any] = {}
    if session.input_audio_format is not UNSET:
        known = _OLDER_FORMATS.get(session.input_audio_format)
        if known is None:
            raise RealtimeError(
                f"input_audio_format must be one of {', '.join(_OLDER_FORMATS)}",
                param="session.input_audio_format",
            )
        changes["audio_format"] = known
    if session.input_audio_transcription is not UNSET:
        changes |= _transcription(session.input_audio_transcription)
    if session.turn_detection is not UNSET:
        changes["turn_detection"] = _vad(session.turn_detection, "session.turn_detection")
    if session.input_audio_noise_reduction is not UNSET:
        changes["noise_reduction"] = session.input_audio_noise_reduction
    if session.include is not None:
        changes["include"] = _include(session.include, "session.include")
    return _checked(dataclasses.replace(config, **changes), english_only=english_only)


def _input_changes(given: AudioInput, where: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if given.format is not UNSET:
        if given.format.type not in _FORMATS:
            raise RealtimeError(
                f"format.type must be one of {', '.join(_FORMATS)}", param=f"{where}.format.type"
            )
        rate = given.format.rate
        if given.format.type == "audio/pcm" and rate not in (None, REALTIME_RATE):
            raise RealtimeError("audio/pcm is 24000 Hz only", param=f"{where}.format.rate")
        changes["audio_format"] = given.format.type
    if given.transcription is not UNSET:
        changes |= _transcription(given.transcription)
    if given.turn_detection is not UNSET:
        changes["turn_detection"] = _vad(given.turn_detection, f"{where}.turn_detection")
    if given.noise_reduction is not UNSET:
        changes["noise_reduction"] = given.noise_reduction
    return changes


def _transcription(given: Transcription | None) -> dict[str, Any]:
    if given is None:
        return {}  # transcription cannot be turned off here: it is the session's purpose
    changes: dict[str, Any] = {}
    if given.model is not None:
        changes["model"] = given.model[:64]
    if given.language is not None:
        changes["language"] = given.language.strip().lower() or None
    if given.prompt is not None:
        changes["prompt"] = given.prompt
    if given.keywords is not None:
        changes["keywords"] = tuple(given.keywords)
    return changes


def _vad(given: TurnDetection | None, where: str) -> TurnDetection | None:
    if given is not None and given.type not in _VADS:
        raise RealtimeError(
            "turn_detection.type must be server_vad or semantic_vad (or turn_detection null)",
            param=f"{where}.type",
        )
    return given


def _include(given: Sequence[str], where: str) -> tuple[str, ...]:
    unknown = set(given) - _INCLUDES
    if unknown:
        raise RealtimeError(f"cannot include {sorted(unknown)}", param=where)
    return tuple(given)


def _checked(config: RealtimeConfig, *, english_only: bool) -> RealtimeConfig:
    where = "session.audio.input.transcription"
    language = config.language
    if language is not None:
        if not language.isascii() or not language.isalpha() or not 2 <= len(language) <= 3:
            raise RealtimeError(
                f"language {language!r} is not an ISO-639-1 code", param=f"{where}.language"
            )
        if english_only and language != "en":
            raise RealtimeError(
                f"the model served here is English-only; language {language!r} is not supported",
                code="unsupported_language",
                param=f"{where}.language",
            )
    try:
        config.vocabulary  # noqa: B018 (checks the bound)
    except ProtocolError:
        raise RealtimeError(
            f"the prompt and keywords hold at most 100 terms of {MAX_VOCABULARY_CHARACTERS} "
            "characters",
            param=f"{where}.prompt",
        ) from None
    return config


def session_object(config: RealtimeConfig, session_id: str) -> dict[str, Any]:
    """The session as ``session.created`` and ``session.updated`` show it."""
    audio_format: dict[str, Any] = {"type": config.audio_format}
    if config.audio_format == "audio/pcm":
        audio_format["rate"] = REALTIME_RATE
    return {
        "type": "transcription",
        "id": session_id,
        "object": "realtime.transcription_session",
        "audio": {
            "input": {
                "format": audio_format,
                "transcription": _transcription_object(config),
                "turn_detection": _plain(config.turn_detection),
                "noise_reduction": _plain(config.noise_reduction),
            }
        },
        "include": list(config.include),
    }


def older_session_object(config: RealtimeConfig, session_id: str) -> dict[str, Any]:
    """The same in ``transcription_session.updated``'s shape."""
    older = {v: k for k, v in _OLDER_FORMATS.items()}
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "input_audio_format": older[config.audio_format],
        "input_audio_transcription": _transcription_object(config),
        "turn_detection": _plain(config.turn_detection),
        "input_audio_noise_reduction": _plain(config.noise_reduction),
        "include": list(config.include),
    }


def _transcription_object(config: RealtimeConfig) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "model": config.model,
        "language": config.language,
        "prompt": config.prompt,
    }
    if config.keywords:
        shown["keywords"] = list(config.keywords)
    return shown


def _plain(value: msgspec.Struct | None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    built: dict[str, Any] = msgspec.to_builtins(value)
    return {k: v for k, v in built.items() if v is not None}
