"""Deepgram's live API as a face of the session: its query string, messages and closes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.deepgram import (
    DeepgramFace,
    ListenOptions,
    error_body,
    http_status,
    parse_listen_request,
)
from ingest.protocol import ClientCommand, MessageBuilder
from shared.audio import Encoding
from shared.errors import ProtocolError
from shared.schema import TranscriptResult, Word


def _query(**values: str | list[str]) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in values.items()}


def test_pipecat_query_is_read_as_deepgram_documents_it() -> None:
    # what pipecat 1.14's DeepgramSTTService sends by default, at a telephone's rate
    params, options = parse_listen_request(
        _query(
            encoding="linear16",
            sample_rate="8000",
            channels="1",
            multichannel="false",
            language="en-US",
            model="nova-3-general",
            interim_results="true",
            smart_format="false",
            punctuate="true",
            numerals="false",
            detect_entities="false",
            diarize="false",
            dictation="false",
        ),
        english_only=True,
    )
    assert (params.encoding, params.sample_rate, params.language) == (
        Encoding.PCM_S16LE,
        8000,
        "en",
    )
    assert params.partials and options.interim_results and not options.vad_events
    assert options.model == "nova-3-general"
    assert options.utterance_end_ms is None


def test_defaults_are_deepgrams() -> None:
    params, options = parse_listen_request({}, english_only=True)
    assert params.encoding is Encoding.PCM_S16LE and params.sample_rate == 16000
    assert not params.partials and not options.interim_results  # interim results are opt-in


def test_telephony_encodings_and_vad_events_ask_for_partials() -> None:
    params, options = parse_listen_request(
        _query(encoding="mulaw", sample_rate="8000", vad_events="true", utterance_end_ms="1000"),
        english_only=True,
    )
    assert params.encoding is Encoding.MULAW
    assert params.partials and options.vad_events and options.utterance_end_ms == 1000


def test_key_terms_lose_their_boosts_and_repeat() -> None:
    _, options = parse_listen_request(
        _query(keyterm=["streamscribe", "Redis"], keywords=["Whisper:2", "Redis"]),
        english_only=True,
    )
    assert options.keyterms == "streamscribe, Redis, Whisper"


@pytest.mark.parametrize(
    ("query", "named"),
    [
        (_query(channels="2"), "channels"),
        (_query(diarize="true"), "diarize"),
        (_query(encoding="opus"), "encoding"),
        (_query(interim_results="yes"), "interim_results"),
        (_query(utterance_end_ms="200"), "utterance_end_ms"),
        (_query(utterance_end_ms="\uff11\uff10\uff10\uff10"), "utterance_end_ms"),  # full-width
        (_query(sample_rate="44"), "sample_rate"),
        (_query(language="cy"), "language"),
        (_query(redact="pci"), "redact"),
        (_query(detect_entities="true"), "detect_entities"),
        (_query(callback="http://x"), "callback"),
        (_query(nonsense="1"), "nonsense"),
        (_query(model=["a", "b"]), "model"),
        (_query(keyterm=["x" * 600]), "keyterm"),
    ],
)
def test_bad_parameters_are_named(query: dict[str, list[str]], named: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_listen_request(query, english_only=True)
    assert refused.value.message.startswith(f"{named}:")
    assert http_status(refused.value) == 400
    body = json.loads(error_body(refused.value, "r1"))
    assert body == {"err_code": "Bad Request", "err_msg": refused.value.message, "request_id": "r1"}


def test_a_refused_token_is_deepgrams_invalid_auth() -> None:
    error = ProtocolError("unauthorized", "an access token is required", 4001)
    assert http_status(error) == 401
    assert json.loads(error_body(error, "r"))["err_code"] == "INVALID_AUTH"


def test_client_messages() -> None:
    face = DeepgramFace(ListenOptions(), request_id="r")
    assert face.command('{"type": "KeepAlive"}') is ClientCommand.KEEPALIVE
    assert face.command('{"type": "Finalize"}') is ClientCommand.FINALIZE
    assert face.command('{"type": "CloseStream"}') is ClientCommand.CLOSE
    for bad in ('{"type": "Configure"}', "[1]", "{}", '{"type": 3}', "[" * 5000, "not json"):
        with pytest.raises(ProtocolError) as refused:
            face.command(bad)
        assert refused.value.close_code == 1003


def _result(index: int, text: str, start: float, words: tuple[Word, ...] = ()) -> TranscriptResult:
    return TranscriptResult("s1", index, 0, text, start, start + 1.5, "en", 0.99, words)


WORDS = (Word(" Hello,", 2.0, 2.4, 0.9), Word(" world.", 2.5, 3.1, 0.7))


def _frames(face: DeepgramFace, message: str) -> list[dict[str, Any]]:
    return [json.loads(frame) for frame in face.frames(message)]


def test_a_final_is_a_final_result_and_an_utterance_end() -> None:
    face = DeepgramFace(
        ListenOptions(interim_results=True, vad_events=True, utterance_end_ms=1000, model="m"),
        request_id="r",
    )
    build = MessageBuilder("s1")
    partial = _frames(face, build.partial(_result(0, "Hello", 2.0), "ana"))
    assert [m["type"] for m in partial] == ["SpeechStarted", "Results"]
    assert partial[0]["timestamp"] == 2.0
    assert partial[1]["is_final"] is False
    assert partial[1]["channel"]["alternatives"][0]["transcript"] == "Hello"
    final = _frames(face, build.final(_result(0, "Hello, world.", 2.0, WORDS), "ana"))
    assert [m["type"] for m in final] == ["Results", "UtteranceEnd"]
    results = final[0]
    assert results["is_final"] and results["speech_final"] and not results["from_finalize"]
    assert (results["start"], results["duration"]) == (2.0, 1.5)
    alternative = results["channel"]["alternatives"][0]
    assert alternative["transcript"] == "Hello, world."
    assert alternative["confidence"] == 0.8
    assert alternative["words"][0] == {
        "word": "hello",
        "start": 2.0,
        "end": 2.4,
        "confidence": 0.9,
        "punctuated_word": "Hello,",
    }
    assert results["metadata"]["model_info"]["name"] == "m"
    assert final[1]["last_word_end"] == 3.1
    # the next utterance starts speech again
    again = _frames(face, build.partial(_result(1, "Again", 5.0), "ana"))
    assert [m["type"] for m in again] == ["SpeechStarted", "Results"]


def test_without_interim_results_partials_only_say_speech_started() -> None:
    face = DeepgramFace(ListenOptions(vad_events=True), request_id="r")
    build = MessageBuilder("s1")
    assert [m["type"] for m in _frames(face, build.partial(_result(0, "He", 2.0), "a"))] == [
        "SpeechStarted"
    ]
    assert _frames(face, build.partial(_result(0, "Hello", 2.0), "a")) == []
    assert [m["type"] for m in _frames(face, build.final(_result(0, "Hi", 2.0), "a"))] == [
        "Results"
    ]


def test_the_final_a_finalize_ended_says_so_and_one_the_cap_cut_is_not_speech_final() -> None:
    face = DeepgramFace(ListenOptions(), request_id="r")
    build = MessageBuilder("s1")
    (answer,) = _frames(face, build.final(_result(0, "Hello", 2.0), "a", ended_by="finalize"))
    assert answer["from_finalize"] is True and answer["speech_final"] is True
    (paused,) = _frames(face, build.final(_result(1, "Again", 5.0), "a", ended_by="pause"))
    assert paused["from_finalize"] is False and paused["speech_final"] is True
    (cut,) = _frames(face, build.final(_result(2, "On and on", 8.0), "a", ended_by="max_length"))
    assert cut["is_final"] is True and cut["speech_final"] is False


def test_session_end_is_metadata_and_the_rest_has_no_deepgram_form() -> None:
    face = DeepgramFace(ListenOptions(model="nova-3"), request_id="r", created=0.0)
    build = MessageBuilder("s1")
    (metadata,) = _frames(face, build.session_end(12.5, 3))
    assert metadata["type"] == "Metadata"
    assert (metadata["request_id"], metadata["duration"], metadata["channels"]) == ("r", 12.5, 1)
    assert metadata["created"] == "1970-01-01T00:00:00.000Z"
    (uuid,) = metadata["models"]
    assert metadata["model_info"][uuid]["name"] == "nova-3"
    assert _frames(face, build.participants("room", [])) == []


def test_errors_and_closes_as_deepgram_has_them() -> None:
    face = DeepgramFace(ListenOptions(), request_id="r")
    build = MessageBuilder("s1")
    (error,) = _frames(face, build.error("invalid_audio", "NaN samples"))
    assert error == {"type": "Error", "variant": "invalid_audio", "description": "NaN samples"}
    assert face.close(1007, "NaN samples") == (1008, "DATA-0000")
    assert face.close(1000, "session ended") == (1000, "session ended")
    _frames(face, build.error("timeout", "nothing received for 10 s (send keepalive)"))
    assert face.close(4008, "nothing received") == (1011, "NET-0001")
