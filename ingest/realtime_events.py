"""The client events of OpenAI's Realtime API that a transcription session reads, typed.

Both shapes of the session's configuration are read: the current one (``session.update``
with ``session.type: "transcription"`` and ``audio.input``) and the older one
(``transcription_session.update`` with ``input_audio_format``,
``input_audio_transcription``...). Unknown fields are refused by name, as OpenAI does.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType


class Envelope(msgspec.Struct, frozen=True):
    """What every client event has; the rest is read by its type."""

    type: str
    event_id: str | None = None


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class AudioFormat(_Strict, frozen=True):
    type: str = "audio/pcm"
    rate: int | None = None


class Transcription(_Strict, frozen=True):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    keywords: list[str] | None = None
    languages: list[str] | None = None
    delay: str | None = None


class TurnDetection(_Strict, frozen=True):
    type: str
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    idle_timeout_ms: int | None = None
    eagerness: str | None = None


class NoiseReduction(_Strict, frozen=True):
    type: str | None = None
    strength: float | None = None


class AudioInput(_Strict, frozen=True):
    format: AudioFormat | UnsetType = UNSET
    transcription: Transcription | UnsetType | None = UNSET
    turn_detection: TurnDetection | UnsetType | None = UNSET
    """``None``: no server VAD; the client commits."""
    noise_reduction: NoiseReduction | UnsetType | None = UNSET


class Audio(_Strict, frozen=True):
    input: AudioInput | UnsetType = UNSET


class Session(_Strict, frozen=True):
    type: str = "transcription"
    audio: Audio | UnsetType = UNSET
    include: list[str] | None = None
    id: str | None = None
    object: str | None = None


class SessionUpdate(_Strict, frozen=True):
    type: str
    session: Session
    event_id: str | None = None


class OlderSession(_Strict, frozen=True):
    """``transcription_session.update``'s session (the Realtime API's beta shape)."""

    input_audio_format: str | UnsetType = UNSET
    input_audio_transcription: Transcription | UnsetType | None = UNSET
    turn_detection: TurnDetection | UnsetType | None = UNSET
    input_audio_noise_reduction: NoiseReduction | UnsetType | None = UNSET
    include: list[str] | None = None
    modalities: list[str] | None = None
    id: str | None = None
    object: str | None = None
    client_secret: dict[str, str] | None = None


class OlderSessionUpdate(_Strict, frozen=True):
    type: str
    session: OlderSession
    event_id: str | None = None


class Append(_Strict, frozen=True):
    type: str
    audio: str
    event_id: str | None = None


class BufferCommand(_Strict, frozen=True):
    """``input_audio_buffer.commit`` and ``.clear``."""

    type: str
    event_id: str | None = None


ENVELOPE = msgspec.json.Decoder(Envelope)
SESSION_UPDATE = msgspec.json.Decoder(SessionUpdate)
OLDER_SESSION_UPDATE = msgspec.json.Decoder(OlderSessionUpdate)
APPEND = msgspec.json.Decoder(Append)
BUFFER_COMMAND = msgspec.json.Decoder(BufferCommand)
