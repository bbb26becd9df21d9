"""The bench's other faces: Deepgram's results and gRPC's responses read as protocol v1's, faces
compared."""

from __future__ import annotations

import json

import pytest

from ingest.deepgram import DeepgramFace, ListenOptions
from ingest.grpc_messages import response_of
from ingest.protocol import MessageBuilder
from shared.client_messages import Transcript, as_dict, decode
from shared.errors import ClientError
from shared.schema import TranscriptResult, Word
from streamscribe.benchmarks.bench import compare_faces
from streamscribe.benchmarks.faces import _transcript, listen_url
from streamscribe.benchmarks.grpc_face import grpc_address, message_of


def test_a_deepgram_final_reads_back_as_the_final_it_was_made_from() -> None:
    result = TranscriptResult(
        "s1", 3, 0, "Hello, world.", 2.0, 3.5, "en", 0.9,
        (Word(" Hello,", 2.0, 2.4, 0.9), Word(" world.", 2.5, 3.1, 0.7)),
    )  # fmt: skip
    face = DeepgramFace(ListenOptions(), request_id="r")
    (frame,) = face.frames(MessageBuilder("s1").final(result, "ana"))
    final = _transcript(json.loads(frame), seq=7, utterance=3)
    assert isinstance(final, Transcript) and final.is_final
    assert (final.text, final.start, final.end) == ("Hello, world.", 2.0, 3.5)
    assert final.utterance_id == "deepgram-3"
    assert [w.word for w in final.words or ()] == ["Hello,", "world."]


def test_listen_url_is_on_the_stream_urls_server() -> None:
    assert (
        listen_url("ws://127.0.0.1:8080/v1/stream", {"encoding": "linear16"})
        == "ws://127.0.0.1:8080/v1/listen?encoding=linear16"
    )


def test_faces_compared_to_the_first() -> None:
    by_face = {
        "v1": {"1": {"wer": 0.10, "fast_final_wer": 0.12, "final_latency_p50_s": 0.30}},
        "deepgram": {"1": {"wer": 0.12, "fast_final_wer": 0.12, "final_latency_p50_s": 0.34}},
    }
    compared = compare_faces(by_face, "v1")
    assert compared == {
        "deepgram": {
            "1": {
                "fast_final_wer_minus_v1": 0.0,
                "wer_minus_v1": 0.02,
                "final_latency_p50_s_minus_v1": 0.04,
            }
        }
    }


def test_a_grpc_response_reads_back_as_the_message_it_was_made_from() -> None:
    result = TranscriptResult(
        "s1", 3, 0, "Hello, world.", 2.0, 3.5, "en", 0.9,
        (Word(" Hello,", 2.0, 2.4, 0.9), Word(" world.", 2.5, 3.1, 0.7)),
    )  # fmt: skip
    build = MessageBuilder("s1")
    timing = {"endpoint_to_send_s": 0.2, "model_s": 0.1, "overhead_s": 0.1}
    for text in (
        build.final(result, "ana", timing, "pause"),
        build.partial(result, "ana"),
        build.session_end(3.5, 1),
        build.error("transcription_failed", "no"),
    ):
        message = message_of(response_of(decode(text)))
        assert message is not None
        assert as_dict(message) == {k: v for k, v in json.loads(text).items()}, text


def test_grpc_addresses() -> None:
    assert grpc_address("grpc://127.0.0.1:8081") == "127.0.0.1:8081"
    with pytest.raises(ClientError, match="not a gRPC address"):
        grpc_address("ws://127.0.0.1:8080/v1/stream")
