"""The audio endpoints' form fields: every mistake is a 400 naming the field, as OpenAI's is."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from ingest.openai_formats import ResponseFormat
from ingest.openai_request import MAX_PROMPT_CHARS, AudioRequest, OpenAIError, parse_audio_form
from shared.file_jobs import FileTask

GRANULARITIES = "timestamp_granularities[]"


def parse(
    fields: dict[str, str], task: FileTask = FileTask.TRANSCRIBE, *, english_only: bool = False
) -> AudioRequest:
    form = {name: [value] for name, value in fields.items()}
    return parse_audio_form(form, task=task, english_only=english_only)


def refusal(
    fields: dict[str, str], task: FileTask = FileTask.TRANSCRIBE, *, english_only: bool = False
) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        parse(fields, task, english_only=english_only)
    assert caught.value.status is HTTPStatus.BAD_REQUEST
    return caught.value


def test_a_plain_request_is_json_greedy_with_no_timestamps() -> None:
    asked = parse({"model": "whisper-1"})
    assert asked.model == "whisper-1"
    assert asked.response_format is ResponseFormat.JSON
    assert not asked.stream and not asked.words and not asked.segments
    assert asked.upload.task is FileTask.TRANSCRIBE
    assert asked.upload.language is None and asked.upload.prompt == ""
    assert asked.upload.temperature == 0.0 and not asked.upload.word_timestamps


def test_every_field_is_carried() -> None:
    form = {
        "model": ["whisper-1"],
        "language": [" EN "],
        "prompt": ["Warner, bachelor hall"],
        "temperature": ["0.4"],
        "response_format": ["verbose_json"],
        "timestamp_granularities[]": ["word", "segment"],
    }
    asked = parse_audio_form(form, task=FileTask.TRANSCRIBE, english_only=True)
    assert asked.upload.language == "en"
    assert asked.upload.prompt == "Warner, bachelor hall"
    assert asked.upload.temperature == 0.4
    assert asked.words and asked.segments and asked.upload.word_timestamps
    assert asked.response_format is ResponseFormat.VERBOSE_JSON


def test_stream_takes_json_or_text_only() -> None:
    assert parse({"model": "m", "stream": "true"}).stream
    assert parse({"model": "m", "stream": "true", "response_format": "text"}).stream
    assert not parse({"model": "m", "stream": "false"}).stream
    assert refusal({"model": "m", "stream": "true", "response_format": "srt"}).param == "stream"
    assert refusal({"model": "m", "stream": "maybe"}).param == "stream"


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({}, "model", "missing_required_parameter"),
        ({"model": "m", "speed": "2"}, "speed", "unknown_parameter"),
        ({"model": "m", "language": "english"}, "language", "invalid_value"),
        ({"model": "m", "language": "e1"}, "language", "invalid_value"),
        ({"model": "m", "temperature": "hot"}, "temperature", "invalid_value"),
        ({"model": "m", "temperature": "1.5"}, "temperature", "invalid_value"),
        ({"model": "m", "response_format": "xml"}, "response_format", "invalid_value"),
        ({"model": "m", "prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt", "invalid_value"),
        ({"model": "m", GRANULARITIES: "word"}, "timestamp_granularities", "invalid_value"),
        (
            {"model": "m", "response_format": "verbose_json", GRANULARITIES: "char"},
            "timestamp_granularities",
            "invalid_value",
        ),
    ],
)  # fmt: skip
def test_each_mistake_names_its_field(fields: dict[str, str], param: str, code: str) -> None:
    error = refusal(fields)
    assert (error.param, error.code) == (param, code)
    assert error.message


def test_a_field_given_twice_is_refused() -> None:
    with pytest.raises(OpenAIError) as caught:
        parse_audio_form({"model": ["a", "b"]}, task=FileTask.TRANSCRIBE, english_only=False)
    assert caught.value.param == "model"


def test_an_english_only_model_refuses_other_languages_and_translation() -> None:
    other = refusal({"model": "m", "language": "fr"}, english_only=True)
    assert other.code == "unsupported_language"
    translate = refusal({"model": "m"}, FileTask.TRANSLATE, english_only=True)
    assert translate.code == "model_cannot_translate" and translate.param == "model"
    assert parse({"model": "m"}, FileTask.TRANSLATE).upload.task is FileTask.TRANSLATE


def test_translations_take_fewer_fields() -> None:
    error = refusal({"model": "m", "language": "fr"}, FileTask.TRANSLATE)
    assert error.code == "unknown_parameter" and error.param == "language"


def test_the_error_body_is_openais_shape() -> None:
    error = refusal({"model": "m", "temperature": "2"})
    assert error.body() == (
        b'{"error":{"message":"temperature must be between 0 and 1","type":'
        b'"invalid_request_error","param":"temperature","code":"invalid_value"}}'
    )
