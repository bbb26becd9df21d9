"""The form fields of OpenAI's audio endpoints, checked: each mistake named as OpenAI's API
names it (its error body, the field at fault in ``param``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec

from ingest.openai_formats import ResponseFormat
from ingest.upload_jobs import UploadRequest
from shared.file_jobs import FileTask

MAX_PROMPT_CHARS = 1000
"""Whisper's prompt holds 224 tokens; longer ones are cut from the start by the model."""
_TRANSCRIPTION_FIELDS = frozenset(
    {
        "file",
        "model",
        "language",
        "prompt",
        "response_format",
        "temperature",
        "timestamp_granularities[]",
        "stream",
        "include[]",
        "chunking_strategy",
    }
)
_TRANSLATION_FIELDS = frozenset({"file", "model", "prompt", "response_format", "temperature"})
_ENCODER = msgspec.json.Encoder()


class OpenAIError(Exception):
    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind
        self.retry_after_s = retry_after_s

    def body(self) -> bytes:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }
        return _ENCODER.encode({"error": error})


def invalid(message: str, param: str | None, code: str = "invalid_value") -> OpenAIError:
    return OpenAIError(HTTPStatus.BAD_REQUEST, message, param=param, code=code)


@dataclass(frozen=True, slots=True)
class AudioRequest:
    upload: UploadRequest
    model: str
    response_format: ResponseFormat
    words: bool
    segments: bool
    stream: bool


def parse_audio_form(
    fields: Mapping[str, Sequence[str]], *, task: FileTask, english_only: bool
) -> AudioRequest:
    """``fields``: every form field but the file, by name, each with its values."""
    allowed = _TRANSLATION_FIELDS if task is FileTask.TRANSLATE else _TRANSCRIPTION_FIELDS
    for name in fields:
        if name not in allowed:
            raise invalid(
                f"Unrecognized request argument supplied: {name}", name, "unknown_parameter"
            )
    model = _one(fields, "model")
    if not model:
        raise invalid("you must provide a model parameter", "model", "missing_required_parameter")
    if task is FileTask.TRANSLATE and english_only:
        raise invalid(
            f"the model {model!r} served here is English-only and cannot translate",
            "model",
            "model_cannot_translate",
        )
    language = _one(fields, "language") or None
    if language is not None:
        language = language.strip().lower()
        if not language.isascii() or not language.isalpha() or not 2 <= len(language) <= 3:
            raise invalid(f"language {language!r} is not an ISO-639-1 code", "language")
        if english_only and language != "en":
            raise invalid(
                f"the model served here is English-only; language {language!r} is not supported",
                "language",
                "unsupported_language",
            )
    prompt = _one(fields, "prompt") or ""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise invalid(f"the prompt is longer than {MAX_PROMPT_CHARS} characters", "prompt")
    temperature = _temperature(_one(fields, "temperature"))
    raw_format = _one(fields, "response_format") or ResponseFormat.JSON.value
    try:
        response_format = ResponseFormat(raw_format)
    except ValueError:
        known = ", ".join(f.value for f in ResponseFormat)
        raise invalid(f"response_format must be one of {known}", "response_format") from None
    granularities = set(fields.get("timestamp_granularities[]", ()))
    unknown = granularities - {"word", "segment"}
    if unknown:
        raise invalid(
            f"timestamp_granularities[] may be word or segment, not {sorted(unknown)}",
            "timestamp_granularities",
        )
    if granularities and response_format is not ResponseFormat.VERBOSE_JSON:
        raise invalid(
            "timestamp_granularities[] needs response_format verbose_json",
            "timestamp_granularities",
        )
    stream = _flag(_one(fields, "stream"))
    if stream and response_format not in (ResponseFormat.JSON, ResponseFormat.TEXT):
        raise invalid("stream=true answers with events; use response_format json or text", "stream")
    words = "word" in granularities
    return AudioRequest(
        upload=UploadRequest(
            task=task,
            language=language,
            prompt=prompt,
            temperature=temperature,
            word_timestamps=words,
        ),
        model=model,
        response_format=response_format,
        words=words,
        segments="segment" in granularities,
        stream=stream,
    )


def _one(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name, ())
    if len(values) > 1:
        raise invalid(f"{name} was given {len(values)} times", name)
    return values[0] if values else None


def _temperature(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise invalid(f"temperature {raw!r} is not a number", "temperature") from None
    if not 0.0 <= value <= 1.0:
        raise invalid("temperature must be between 0 and 1", "temperature")
    return value


def _flag(raw: str | None) -> bool:
    if raw is None or raw.lower() in ("false", "0", ""):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise invalid(f"stream must be true or false, not {raw!r}", "stream")
