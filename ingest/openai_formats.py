"""The bodies of OpenAI's audio endpoints, built from an upload's transcribed windows.

``json`` (``text``, ``usage``), ``text``, ``srt``, ``vtt`` and ``verbose_json`` (``task``,
``language`` by name as Whisper names it, ``duration``, ``text``, ``segments`` and/or
``words`` as ``timestamp_granularities[]`` asks), as the OpenAI API returns them for
``whisper-1``; and the server-sent events of ``stream=true``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from shared.file_jobs import FileSegment, FileWindowResult

_ENCODER = msgspec.json.Encoder()


class ResponseFormat(StrEnum):
    JSON = "json"
    TEXT = "text"
    SRT = "srt"
    VTT = "vtt"
    VERBOSE_JSON = "verbose_json"


@dataclass(frozen=True, slots=True)
class FileTranscript:
    task: str
    language: str
    """Whisper's code (``en``)."""
    duration_s: float
    segments: tuple[FileSegment, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


def assemble(task: str, duration_s: float, results: list[FileWindowResult]) -> FileTranscript:
    """The windows' results in window order; the language most of the speech was in."""
    ordered = sorted(results, key=lambda r: r.window_index)
    spoken: dict[str, float] = {}
    for result in ordered:
        for segment in result.segments:
            spoken[result.language] = spoken.get(result.language, 0.0) + segment.end - segment.start
    language = max(spoken, key=lambda code: spoken[code]) if spoken else ""
    if not language and ordered:
        language = ordered[0].language
    segments = tuple(s for r in ordered for s in r.segments)
    return FileTranscript(task, language, round(duration_s, 3), segments)


def render(
    transcript: FileTranscript, response_format: ResponseFormat, *, words: bool, segments: bool
) -> tuple[bytes, str]:
    """The response body and its content type."""
    if response_format is ResponseFormat.TEXT:
        return (transcript.text + "\n").encode(), "text/plain; charset=utf-8"
    if response_format is ResponseFormat.SRT:
        return _subtitles(transcript, vtt=False).encode(), "text/plain; charset=utf-8"
    if response_format is ResponseFormat.VTT:
        return _subtitles(transcript, vtt=True).encode(), "text/vtt; charset=utf-8"
    body: dict[str, Any]
    if response_format is ResponseFormat.JSON:
        body = {"text": transcript.text, "usage": usage(transcript)}
    else:
        body = {
            "task": transcript.task,
            "language": LANGUAGE_NAMES.get(transcript.language, transcript.language),
            "duration": transcript.duration_s,
            "text": transcript.text,
        }
        if segments or not words:
            body["segments"] = [_segment(i, s) for i, s in enumerate(transcript.segments)]
        if words:
            body["words"] = [
                {"word": w.word.strip(), "start": w.start, "end": w.end}
                for s in transcript.segments
                for w in s.words
            ]
        body["usage"] = usage(transcript)
    return _ENCODER.encode(body), "application/json"


def usage(transcript: FileTranscript) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(transcript.duration_s)}


def text_delta_event(delta: str) -> bytes:
    return _event({"type": "transcript.text.delta", "delta": delta})


def text_done_event(transcript: FileTranscript) -> bytes:
    return _event(
        {"type": "transcript.text.done", "text": transcript.text, "usage": usage(transcript)}
    )


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + _ENCODER.encode(body) + b"\n\n"


def _segment(index: int, segment: FileSegment) -> dict[str, Any]:
    return {
        "id": index,
        "seek": int(segment.start * 100),
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


def _subtitles(transcript: FileTranscript, *, vtt: bool) -> str:
    blocks = ["WEBVTT\n"] if vtt else []
    shown = [s for s in transcript.segments if s.text.strip()]
    for number, segment in enumerate(shown, start=1):
        times = f"{_stamp(segment.start, vtt)} --> {_stamp(segment.end, vtt)}"
        lines = [times, segment.text.strip()] if vtt else [str(number), times, segment.text.strip()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def _stamp(seconds: float, vtt: bool) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{'.' if vtt else ','}{millis:03d}"


LANGUAGE_NAMES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian",
    "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian",
    "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala",
    "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi",
    "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian",
    "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese",
    "yue": "cantonese",
}  # fmt: skip
"""Whisper's names for its languages (``openai/whisper``'s tokenizer), as ``verbose_json``
reports them."""
