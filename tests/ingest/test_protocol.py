from __future__ import annotations

import json

import pytest

from ingest.protocol import (
    CLOSE_BAD_PARAMETER,
    CLOSE_INVALID_PAYLOAD,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    ClientCommand,
    MessageBuilder,
    StreamParams,
    check_audio_frame,
    parse_client_text,
    parse_stream_params,
)
from shared import client_messages
from shared.audio import Encoding
from shared.errors import ProtocolError, SchemaError
from shared.schema import Participant, RoomTurn, TranscriptResult, TranslationDone, Word


def params(**query: str) -> StreamParams:
    return parse_stream_params({k: [v] for k, v in query.items()}, english_only=False)


def test_defaults() -> None:
    p = parse_stream_params({}, english_only=True)
    assert p == StreamParams(16000, Encoding.PCM_S16LE, "en", True, "anonymous")
    assert params().language is None  # multilingual model: detect


def test_valid_parameters() -> None:
    p = params(
        sample_rate="44100", encoding="pcm_f32le", language="es", partials="false", name="Ana"
    )
    assert p == StreamParams(44100, Encoding.PCM_F32LE, "es", False, "Ana")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"sample_rate": "96000"}, "sample_rate"),
        ({"sample_rate": "abc"}, "sample_rate"),
        ({"encoding": "mp3"}, "encoding"),
        ({"language": "english!"}, "language"),
        ({"partials": "maybe"}, "partials"),
        ({"bogus": "1"}, "bogus"),
        ({"name": "x" * 65}, "name"),
        ({"room": " "}, "room"),
        ({"room": "x" * 129}, "room"),
        ({"room": "a\nb"}, "room"),
        ({"listen": "true"}, "listen"),
        ({"room": "42", "listen": "sometimes"}, "listen"),
        ({"translate": "cy,w!"}, "translate"),
        ({"translate": "cy,fr,de,es,it,nl"}, "translate"),
        ({"room": "1", "listen": "true", "translate": "cy"}, "translate"),
        ({"read": "Welsh"}, "read"),
        ({"read": "zzq"}, "read"),  # no language a translator serves
        ({"translate": "fr,xx"}, "translate"),
        ({"resume": "abc"}, "resume"),
        ({"last_seq": "3"}, "last_seq"),
        ({"resume": "s1.abc", "last_seq": "-1"}, "last_seq"),
        ({"resume": "s1.abc", "last_seq": "x"}, "last_seq"),
        ({"resume": "s1.abc", "last_seq": "9" * 13}, "last_seq"),
    ],
)
def test_bad_parameters_name_the_parameter(query: dict[str, str], named: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        params(**query)
    assert caught.value.close_code == CLOSE_BAD_PARAMETER
    assert caught.value.message.startswith(named)


def test_translate_targets_are_deduplicated_in_order() -> None:
    assert params(translate="cy, fr,cy").translate == ("cy", "fr")


def test_a_reading_language_is_a_code_and_is_shown_to_the_room() -> None:
    reader = params(room="42", listen="true", read="cy")
    assert reader.read == "cy" and params().read == ""
    builder = MessageBuilder("s9")
    begin = json.loads(builder.session_begin(reader, "base"))
    assert begin["read"] == "cy"
    joined = json.loads(builder.presence("42", True, Participant("s9", "Ana", True, read="cy")))
    assert joined["read"] == "cy"
    members = json.loads(builder.participants("42", [Participant("s2", "Bo", False)]))
    assert "read" not in members["participants"][0]  # reads whatever is spoken


def test_room_and_listener() -> None:
    p = params(room="Café {42}", listen="true")
    assert (p.room, p.listen) == ("Café {42}", True)


def test_english_only_model_refuses_other_languages() -> None:
    with pytest.raises(ProtocolError, match="English-only"):
        parse_stream_params({"language": ["fr"]}, english_only=True)
    # detection too: an English-only model would take every language for English
    with pytest.raises(ProtocolError, match="English-only") as refused:
        parse_stream_params({"language": ["auto"]}, english_only=True)
    assert refused.value.close_code == 4400
    assert params(language="auto").language is None


def test_repeated_parameter_is_refused() -> None:
    with pytest.raises(ProtocolError, match="more than once"):
        parse_stream_params({"language": ["en", "fr"]}, english_only=False)


def test_client_text_frames() -> None:
    assert parse_client_text('{"type": "finalize"}') is ClientCommand.FINALIZE
    assert parse_client_text('{"type": "close"}') is ClientCommand.CLOSE
    assert parse_client_text('{"type": "keepalive", "extra": 1}') is ClientCommand.KEEPALIVE
    for bad in ("not json", "[1, 2]", '{"type": 5}', '{"type": "dance"}'):
        with pytest.raises(ProtocolError) as caught:
            parse_client_text(bad)
        assert caught.value.close_code == CLOSE_UNSUPPORTED


def test_audio_frame_checks() -> None:
    check_audio_frame(b"\x00" * 640, Encoding.PCM_S16LE, 1024)
    with pytest.raises(ProtocolError) as odd:
        check_audio_frame(b"\x00" * 641, Encoding.PCM_S16LE, 1024)
    assert odd.value.close_code == CLOSE_INVALID_PAYLOAD
    with pytest.raises(ProtocolError) as f32:
        check_audio_frame(b"\x00" * 6, Encoding.PCM_F32LE, 1024)
    assert f32.value.close_code == CLOSE_INVALID_PAYLOAD
    with pytest.raises(ProtocolError) as big:
        check_audio_frame(b"\x00" * 2048, Encoding.PCM_S16LE, 1024)
    assert big.value.close_code == CLOSE_TOO_BIG


def test_messages_carry_type_session_and_increasing_seq() -> None:
    builder = MessageBuilder("s9")
    result = TranscriptResult("s9", 4, 0, "hi", 1.0, 1.5, "en", 0.99, (Word("hi", 1.0, 1.5, 0.9),))
    begin = json.loads(builder.session_begin(params(), "tiny.en"))
    final = json.loads(builder.final(result, "Ana", {"overhead_s": 0.001}))
    end = json.loads(builder.session_end(3.0, 1))
    assert [m["seq"] for m in (begin, final, end)] == [1, 2, 3]
    assert {m["session_id"] for m in (begin, final, end)} == {"s9"}
    assert begin["type"] == "session.begin" and begin["protocol"] == 1
    assert final["utterance_id"] == "s9-4" and final["is_final"] is True
    assert final["words"] == [{"word": "hi", "start": 1.0, "end": 1.5, "probability": 0.9}]


def test_resume_and_last_seq_are_read_together() -> None:
    p = params(resume="s1.secret", last_seq="17")
    assert (p.resume, p.last_seq) == ("s1.secret", 17)
    assert "secret" not in repr(p)  # never logged


def test_a_resumed_greeting_keeps_the_clients_seq_and_numbers_go_on_from_the_servers() -> None:
    builder = MessageBuilder("s1", last_seq=9)
    greeting = json.loads(
        builder.session_resumed(params(), "tiny.en", "s1.t", client_seq=7, samples=320)
    )
    assert greeting["seq"] == 7 and greeting["resumed"] is True
    assert (greeting["samples_received"], greeting["last_seq"]) == (320, 9)
    assert greeting["resume_token"] == "s1.t"
    assert json.loads(builder.error("x", "y"))["seq"] == 10


@pytest.mark.parametrize(
    "raw", ["\u00b2", "\u2460", "\uff11\uff16\uff10\uff10\uff10", "16000 ", "-16000", "1" * 40]
)
def test_sample_rates_are_ascii_digits_only(raw: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        params(sample_rate=raw)
    assert caught.value.close_code == CLOSE_BAD_PARAMETER and "sample_rate" in caught.value.message


@pytest.mark.parametrize("raw", ["\u00b2", "\u0663", "\uff11"])  # ², Arabic-Indic 3, full-width 1
def test_last_seq_is_ascii_digits_only(raw: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        params(resume="r" * 20, last_seq=raw)
    assert caught.value.close_code == CLOSE_BAD_PARAMETER and "last_seq" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "[" * 990 + "]" * 990,  # deep enough to exhaust the parser's recursion
        '{"type": "finalize", "n": ' + "9" * 4400 + "}",  # beyond int's digit limit
        '{"type": "keepalive", "pad": "' + "x" * 5000 + '"}',
    ],
)
def test_text_frames_that_break_parsers_are_invalid_messages(text: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_text(text)
    assert caught.value.close_code == CLOSE_UNSUPPORTED and caught.value.code == "invalid_message"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Ana\x00", "Ana"),
        ("\u202eanA", "anA"),
        ("Ana\n00:00:01,000 --> 00:00:02,000", "Ana 00:00:01,000 --> 00:00:02,000"),
        ("\x1b[31mAna", "[31mAna"),
        ("  Ana \t Bel ", "Ana Bel"),
        ("\x00\u200b", "anonymous"),
        ("Siân", "Siân"),
    ],
)
def test_display_names_lose_control_characters(raw: str, shown: str) -> None:
    assert params(name=raw).name == shown


def test_every_message_built_decodes_by_the_client_schema_as_sent() -> None:
    builder = MessageBuilder("s9")
    result = TranscriptResult("s9", 4, 0, "hi", 1.0, 1.5, "en", 0.99, (Word("hi", 1.0, 1.5, 0.9),))
    ana, ben = Participant("s9", "Ana", False), Participant("s2", "Ben", True)
    frames = [
        builder.session_begin(params(room="42"), "tiny.en", "s9.t"),
        builder.session_resumed(params(), "tiny.en", "s9.t", client_seq=1, samples=320),
        builder.partial(result, "Ana"),
        builder.final(result, "Ana", {"overhead_s": 0.001}),
        builder.final(result, "Ana"),
        builder.room_turn(RoomTurn(ben, 0, (1, 2), result)),
        builder.presence("42", True, ben),
        builder.presence("42", False, ben),
        builder.participants("42", [ana, ben]),
        builder.translation(TranslationDone("s9", "Ana", 4, "en", "cy", "Helo", turn_index=0)),
        builder.translation(TranslationDone("s9", "Ana", 4, "en", "cy", "", "throttled", "later")),
        builder.error("transcription_failed", "model failed", utterance_id="s9-4"),
        builder.error("timeout", "too slow"),
        builder.session_end(3.0, 1),
    ]
    kinds = []
    for frame in frames:
        typed = client_messages.decode(frame)
        assert client_messages.as_dict(typed) == json.loads(frame)
        kinds.append(json.loads(frame)["type"])
    assert set(kinds) == client_messages.KNOWN_TYPES
    final = json.loads(frames[4])
    assert "server_timing" not in final and final["language"] == "en"
    partial = json.loads(frames[2])
    assert "words" not in partial and "language" not in partial  # a partial has text and times
    assert json.loads(frames[10])["error"] == {"code": "throttled", "message": "later"}
    assert "error" not in json.loads(frames[9]) and json.loads(frames[9])["turn_id"] == "s9-t0"


def test_a_malformed_server_message_is_refused_by_name() -> None:
    with pytest.raises(SchemaError, match="missing required field `seq`"):
        client_messages.decode(b'{"type": "session.end", "session_id": "s", "duration_s": 1}')


def test_vocabulary_terms_are_cleaned_deduplicated_and_bounded() -> None:
    asked = params(vocabulary="streamscribe, Redis,,  Redis ,Kate\u202e's\n")
    assert asked.vocabulary == "streamscribe, Redis, Kate's"
    assert params().vocabulary == ""
    with pytest.raises(ProtocolError) as refused:
        params(vocabulary=",".join(f"term{i}" for i in range(101)))
    assert refused.value.message.startswith("vocabulary:")
    with pytest.raises(ProtocolError):
        params(vocabulary="x" * 501)
