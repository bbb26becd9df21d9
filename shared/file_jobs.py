"""Transcription of uploaded recordings: ingest -> transcribers -> ingest, versioned.

An upload is cut into windows (at most Whisper's 30 s, cut at pauses); each window is a
:class:`FileWindowJob` on :data:`shared.keys.FILE_JOBS_STREAM` (a flat field map like the live
jobs, its PCM raw beside a JSON ``meta``), and each comes back as a :class:`FileWindowResult`
on the upload's own results stream. Times in results are seconds of the whole recording.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from shared.errors import SchemaError
from shared.schema import Fields, Word, check_version, entry_field, stream_entry

_ENCODER = msgspec.json.Encoder()
_KIND = b"file.window"


class FileTask(StrEnum):
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"
    """Into English (Whisper's own task)."""


class FileWindowJob(msgspec.Struct, frozen=True):
    upload_id: str
    window_index: int
    start_sample: int
    """Offset of ``pcm`` in the recording, at 16 kHz."""
    pcm: bytes
    """16 kHz mono s16le; empty in ``meta`` (it travels raw)."""
    task: FileTask
    language: str | None
    """None: the model detects it."""
    prompt: str
    temperature: float
    """0: Whisper's fallback from 0 upwards when a decode looks wrong; else that one."""
    word_timestamps: bool
    enqueued_at: float

    def encode(self) -> dict[str, bytes]:
        meta = _ENCODER.encode(msgspec.structs.replace(self, pcm=b""))
        return stream_entry(_KIND.decode(), meta, self.pcm)

    @classmethod
    def decode(cls, fields: Fields) -> FileWindowJob:
        check_version(fields)
        if entry_field(fields, "kind") != _KIND:
            raise SchemaError("not a file window entry")
        pcm = entry_field(fields, "pcm")
        if len(pcm) % 2:
            raise SchemaError("window audio has an odd number of bytes")
        try:
            meta = _JOB_DECODER.decode(entry_field(fields, "meta"))
        except msgspec.DecodeError as exc:
            raise SchemaError(f"bad file window meta: {exc}") from None
        return msgspec.structs.replace(meta, pcm=pcm)


class FileSegment(msgspec.Struct, frozen=True):
    """One of Whisper's segments, as OpenAI's ``verbose_json`` reports them."""

    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()


class FileWindowResult(msgspec.Struct, frozen=True, kw_only=True):
    v: int = 1
    upload_id: str
    window_index: int
    language: str
    language_probability: float
    segments: tuple[FileSegment, ...] = ()
    error: str = ""
    """Set when the window could not be transcribed (after every attempt)."""

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> FileWindowResult:
        try:
            result = _RESULT_DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise SchemaError(f"bad file window result: {exc}") from None
        if result.v != 1:
            raise SchemaError(f"unsupported file window result version {result.v}")
        return result


_JOB_DECODER = msgspec.json.Decoder(FileWindowJob)
_RESULT_DECODER = msgspec.json.Decoder(FileWindowResult)
