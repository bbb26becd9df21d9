"""The audio endpoints' bodies, from windows' results: each format as OpenAI writes it."""

from __future__ import annotations

import json

from ingest.openai_formats import (
    ResponseFormat,
    assemble,
    render,
    text_delta_event,
    text_done_event,
)
from shared.file_jobs import FileSegment, FileWindowResult
from shared.schema import Word


def segment(start: float, end: float, text: str, *words: Word) -> FileSegment:
    return FileSegment(start, end, text, (50364, 400), 0.0, -0.21, 1.3, 0.01, words)


def result(index: int, language: str, *segments: FileSegment) -> FileWindowResult:
    return FileWindowResult(
        upload_id="u", window_index=index, language=language, language_probability=0.9,
        segments=segments,
    )  # fmt: skip


# windows come back out of order; the second window is silence
RESULTS = [
    result(2, "en", segment(3725.5, 3727.25, " Goodbye.", Word(" Goodbye.", 3725.6, 3727.1, 0.9))),
    result(1, "en"),
    result(
        0,
        "en",
        segment(
            0.0, 2.5, " Hello there.", Word(" Hello", 0.1, 0.6, 0.9), Word(" there.", 0.7, 2.4, 0.8)
        ),
        segment(2.5, 4.0, " "),
    ),
]  # fmt: skip
TRANSCRIPT = assemble("transcribe", 3727.4, RESULTS)


def body(response_format: ResponseFormat, *, words: bool = False, segments: bool = False) -> str:
    data, _ = render(TRANSCRIPT, response_format, words=words, segments=segments)
    return data.decode()


def test_windows_are_put_back_in_order_and_blank_segments_left_out_of_text() -> None:
    assert TRANSCRIPT.text == "Hello there. Goodbye."
    assert [s.text for s in TRANSCRIPT.segments] == [" Hello there.", " ", " Goodbye."]


def test_json_has_the_text_and_seconds_used() -> None:
    assert json.loads(body(ResponseFormat.JSON)) == {
        "text": "Hello there. Goodbye.",
        "usage": {"type": "duration", "seconds": 3728},
    }
    assert body(ResponseFormat.TEXT) == "Hello there. Goodbye.\n"


def test_srt_numbers_its_cues_with_comma_millis() -> None:
    assert body(ResponseFormat.SRT) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n"
        "\n"
        "2\n01:02:05,500 --> 01:02:07,250\nGoodbye.\n"
    )


def test_vtt_has_its_header_and_dot_millis() -> None:
    assert body(ResponseFormat.VTT) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\nHello there.\n"
        "\n"
        "01:02:05.500 --> 01:02:07.250\nGoodbye.\n"
    )


def test_verbose_json_gives_segments_by_default_and_words_when_asked() -> None:
    plain = json.loads(body(ResponseFormat.VERBOSE_JSON))
    assert (plain["task"], plain["language"], plain["duration"]) == (
        "transcribe",
        "english",
        3727.4,
    )
    assert [s["id"] for s in plain["segments"]] == [0, 1, 2]
    first = plain["segments"][0]
    assert first["start"] == 0.0 and first["end"] == 2.5 and first["tokens"] == [50364, 400]
    assert {"avg_logprob", "compression_ratio", "no_speech_prob", "temperature", "seek"} <= set(
        first
    )
    assert "words" not in plain

    words = json.loads(body(ResponseFormat.VERBOSE_JSON, words=True))
    assert "segments" not in words
    assert words["words"] == [
        {"word": "Hello", "start": 0.1, "end": 0.6},
        {"word": "there.", "start": 0.7, "end": 2.4},
        {"word": "Goodbye.", "start": 3725.6, "end": 3727.1},
    ]
    both = json.loads(body(ResponseFormat.VERBOSE_JSON, words=True, segments=True))
    assert len(both["segments"]) == 3 and len(both["words"]) == 3


def test_the_language_is_the_one_most_speech_was_in() -> None:
    welsh, english = segment(0.0, 12.0, " Bore da."), segment(12.0, 14.0, " Hi.")
    mixed = assemble("transcribe", 20.0, [result(0, "cy", welsh), result(1, "en", english)])
    assert mixed.language == "cy"
    assert (
        json.loads(render(mixed, ResponseFormat.VERBOSE_JSON, words=False, segments=False)[0])[
            "language"
        ]
        == "welsh"
    )
    assert assemble("transcribe", 5.0, [result(0, "de")]).language == "de"  # silence only


def test_stream_events_are_server_sent_json() -> None:
    assert (
        text_delta_event("Hello") == b'data: {"type":"transcript.text.delta","delta":"Hello"}\n\n'
    )
    done = text_done_event(TRANSCRIPT)
    assert done.startswith(b"data: ") and done.endswith(b"\n\n")
    assert json.loads(done[6:]) == {
        "type": "transcript.text.done",
        "text": "Hello there. Goodbye.",
        "usage": {"type": "duration", "seconds": 3728},
    }
