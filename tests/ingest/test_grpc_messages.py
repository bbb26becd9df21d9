"""gRPC API v1 to and from protocol v1: configs, requests, responses, status codes."""

from __future__ import annotations

import grpc
import pytest

from ingest.grpc_messages import (
    CLOSE_FRAME,
    FINALIZE_FRAME,
    config_query,
    first_config,
    frame_of,
    response_of,
    status_of,
)
from ingest.protocol import MessageBuilder, StreamParams, parse_client_text, parse_stream_params
from shared.audio import Encoding
from shared.client_messages import decode
from shared.errors import ProtocolError
from shared.grpc_api import transcription_pb2 as pb
from shared.schema import Participant, TranscriptResult, TranslationDone, Word

RESULT = TranscriptResult(
    "s9", 4, 0, "hi there", 1.0, 1.5, "en", 0.99, (Word("hi", 1.0, 1.2, 0.9),)
)


def test_an_empty_config_is_protocol_v1_s_defaults() -> None:
    query = config_query(pb.StreamConfig())
    assert query == {}
    params = parse_stream_params(query, english_only=True)
    assert (params.sample_rate, params.encoding, params.partials) == (
        16000,
        Encoding.PCM_S16LE,
        True,
    )


def test_a_full_config_is_the_query_it_stands_for() -> None:
    config = pb.StreamConfig(
        sample_rate=8000,
        encoding="mulaw",
        language="de",
        partials=False,
        name="Ana",
        room="42",
        translate=["fr", "es"],
        vocabulary=["Kubernetes", "Redis"],
    )
    query = config_query(config)
    assert query == {
        "sample_rate": ["8000"],
        "encoding": ["mulaw"],
        "language": ["de"],
        "partials": ["false"],
        "name": ["Ana"],
        "room": ["42"],
        "translate": ["fr,es"],
        "vocabulary": ["Kubernetes,Redis"],
    }
    params = parse_stream_params(query, english_only=False)
    assert params.translate == ("fr", "es") and params.partials is False
    assert "Kubernetes" in params.vocabulary


def test_a_config_is_validated_as_the_query_string_is() -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_stream_params(config_query(pb.StreamConfig(encoding="opus")), english_only=True)
    assert refused.value.code == "invalid_parameter" and "encoding" in refused.value.message
    with pytest.raises(ProtocolError, match="comma"):
        config_query(pb.StreamConfig(vocabulary=["a,b"]))
    with pytest.raises(ProtocolError, match="listener must join a room"):
        parse_stream_params(config_query(pb.StreamConfig(listen=True)), english_only=True)


def test_requests_are_the_v1_frames_they_stand_for() -> None:
    assert frame_of(pb.StreamRequest(audio=b"\x01\x02")) == b"\x01\x02"
    finalize = frame_of(pb.StreamRequest(finalize=pb.Finalize()))
    close = frame_of(pb.StreamRequest(close=pb.Close()))
    assert (finalize, close) == (FINALIZE_FRAME, CLOSE_FRAME)
    assert parse_client_text(FINALIZE_FRAME).value == "finalize"
    assert parse_client_text(CLOSE_FRAME).value == "close"


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (pb.StreamRequest(config=pb.StreamConfig()), "a config after the first request"),
        (pb.StreamRequest(), "an empty request"),
    ],
)
def test_a_request_out_of_place_is_refused(request_: pb.StreamRequest, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem) as refused:
        frame_of(request_)
    assert refused.value.close_code == 1003


def test_a_call_begins_with_its_config() -> None:
    config = pb.StreamConfig(room="7")
    assert first_config(pb.StreamRequest(config=config)) == config
    with pytest.raises(ProtocolError, match="first request must be a config"):
        first_config(pb.StreamRequest(audio=b"\x00\x00"))


def _response(text: str) -> pb.StreamResponse:
    return response_of(decode(text))


def test_each_v1_message_has_its_typed_response() -> None:
    build = MessageBuilder("s9")
    params = StreamParams(16000, Encoding.PCM_S16LE, "en", True, "Ana", "42", False, ("fr",))
    begin = _response(build.session_begin(params, "tiny.en", "token"))
    assert (begin.session_id, begin.seq, begin.WhichOneof("message")) == ("s9", 1, "session_begin")
    assert (begin.session_begin.model, begin.session_begin.room) == ("tiny.en", "42")
    assert list(begin.session_begin.translate) == ["fr"]

    partial = _response(build.partial(RESULT, "Ana")).transcript
    assert (partial.is_final, partial.text, partial.utterance_id) == (False, "hi there", "s9-4")
    assert (partial.language, list(partial.words)) == ("", [])

    timing = {"endpoint_to_send_s": 0.25, "model_s": 0.1, "overhead_s": 0.15}
    final = _response(build.final(RESULT, "Ana", timing, "pause")).transcript
    assert (final.is_final, final.language, final.ended_by) == (True, "en", "pause")
    assert final.language_probability == pytest.approx(0.99)
    assert [(w.word, w.start, w.end) for w in final.words] == [("hi", 1.0, 1.2)]
    assert dict(final.server_timing) == timing

    joined = _response(build.presence("42", True, Participant("s2", "Bo", True)))
    left = _response(build.presence("42", False, Participant("s2", "Bo", True)))
    assert (joined.session_id, joined.room_join.name, joined.room_join.listener) == (
        "s2",
        "Bo",
        True,
    )
    assert left.WhichOneof("message") == "room_leave"
    members = _response(build.participants("42", [Participant("s2", "Bo", False)]))
    assert [(m.session_id, m.name) for m in members.room_participants.participants] == [
        ("s2", "Bo")
    ]

    done = TranslationDone("s9", "Ana", 4, "en", "fr", "", "rate_limited", "too many", turn_index=2)
    translation = _response(build.translation(done)).translation
    assert (translation.error_code, translation.turn_id) == ("rate_limited", "s9-t2")

    failed = _response(build.error("transcription_failed", "no", utterance_id="s9-4")).error
    assert (failed.code, failed.utterance_id) == ("transcription_failed", "s9-4")
    end = _response(build.session_end(3.5, 2))
    assert (end.seq, end.session_end.duration_s, end.session_end.utterances) == (9, 3.5, 2)


@pytest.mark.parametrize(
    ("close_code", "status"),
    [
        (1000, grpc.StatusCode.OK),
        (4001, grpc.StatusCode.UNAUTHENTICATED),
        (4003, grpc.StatusCode.PERMISSION_DENIED),
        (4400, grpc.StatusCode.INVALID_ARGUMENT),
        (1003, grpc.StatusCode.INVALID_ARGUMENT),
        (1007, grpc.StatusCode.INVALID_ARGUMENT),
        (4029, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (1013, grpc.StatusCode.UNAVAILABLE),
        (4008, grpc.StatusCode.DEADLINE_EXCEEDED),
        (1011, grpc.StatusCode.INTERNAL),
        (4999, grpc.StatusCode.UNKNOWN),
    ],
)
def test_close_codes_are_status_codes(close_code: int, status: grpc.StatusCode) -> None:
    assert status_of(close_code) is status
