from __future__ import annotations

import json

import pytest

from shared.errors import SchemaError
from shared.schema import (
    AudioAppended,
    Commit,
    FinalizeRequested,
    FinalTranscript,
    JobKind,
    PartialTranscript,
    Participant,
    RoomPresence,
    RoomTranscript,
    RoomTurn,
    SegmentationFinished,
    SessionOpened,
    StreamClosed,
    TranscriptionJob,
    TranscriptResult,
    TranslationDone,
    TurnTranscript,
    UtteranceFailed,
    Word,
    decode_audio_entry,
    decode_event,
    final_envelope,
)


def as_fields(encoded: dict[str, bytes]) -> dict[bytes, bytes]:
    return {k.encode(): v for k, v in encoded.items()}


RESULT = TranscriptResult(
    session_id="s1",
    utterance_index=3,
    partial_seq=0,
    text="ask not",
    start=1.5,
    end=2.25,
    language="en",
    language_probability=1.0,
    words=(Word("ask", 1.5, 1.8, 0.9), Word("not", 1.9, 2.25, 0.8)),
    model_started_at=10.0,
    model_done_at=10.5,
)


def test_stream_entries_round_trip() -> None:
    opened = SessionOpened("s1", "en", True, 123.5)
    assert SessionOpened.decode(as_fields(opened.encode())) == opened
    for entry in (
        AudioAppended(b"\x01\x02" * 10, 5.0),
        FinalizeRequested(6.0),
        StreamClosed("close", 7.0),
    ):
        assert decode_audio_entry(as_fields(entry.encode())) == entry


def test_job_round_trip_keeps_pcm_raw() -> None:
    job = TranscriptionJob(
        kind=JobKind.SPECULATIVE,
        session_id="s1",
        utterance_index=2,
        revision=1,
        partial_seq=0,
        start_sample=16000,
        pcm=bytes(range(256)) * 2,
        language=None,
        speech_ratio=0.8,
        endpoint_at=0.0,
        enqueued_at=99.0,
    )
    fields = as_fields(job.encode())
    assert fields[b"pcm"] == job.pcm
    assert TranscriptionJob.decode(fields) == job


def test_events_round_trip() -> None:
    commit = Commit(3, 1, 100.0, 100.2)
    for event in (
        PartialTranscript(RESULT),
        FinalTranscript(RESULT, commit),
        SegmentationFinished("s1", 4),
        UtteranceFailed("s1", 3, "model failed"),
        RoomPresence(True, Participant("s2", "Ben", True)),
        RoomTranscript(Participant("s1", "Ana", False), True, RESULT),
        TranslationDone("s1", "Ana", 3, "en", "cy", "Peidiwch", latency_s=0.4),
    ):
        assert decode_event(event.encode()) == event
    assert Commit.decode(commit.encode()) == commit
    assert Participant.decode(Participant("s2", "Ben", True).encode()).listener


def test_the_final_envelope_a_redis_script_builds_decodes_as_a_final() -> None:
    commit = Commit(3, 1, 100.0, 100.2)
    built = final_envelope(commit.encode(), RESULT.encode())
    assert decode_event(built) == FinalTranscript(RESULT, commit)
    assert built == FinalTranscript(RESULT, commit).encode()


def test_wrong_version_and_garbage_are_refused() -> None:
    fields = as_fields(SessionOpened("s1", None, False, 1.0).encode())
    fields[b"v"] = b"2"
    with pytest.raises(SchemaError, match="version"):
        SessionOpened.decode(fields)
    with pytest.raises(SchemaError, match="bad event: JSON is malformed"):
        decode_event(b"\xff")
    with pytest.raises(SchemaError, match=r"Invalid value 'nope' - at `\$.kind`"):
        decode_event(json.dumps({"v": 1, "kind": "nope"}).encode())
    partial = json.loads(PartialTranscript(RESULT).encode())
    with pytest.raises(SchemaError, match=r"Invalid enum value 2 - at `\$.v`"):
        decode_event(json.dumps({**partial, "v": 2}).encode())
    partial["result"]["utterance_index"] = True
    with pytest.raises(
        SchemaError, match=r"Expected `int`, got `bool` - at `\$.result.utterance_index`"
    ):
        decode_event(json.dumps(partial).encode())
    del partial["result"]
    with pytest.raises(SchemaError, match="missing required field `result`"):
        decode_event(json.dumps(partial).encode())
    with pytest.raises(SchemaError, match="missing field 'pcm'"):
        decode_audio_entry({b"v": b"1", b"kind": b"audio", b"meta": b'{"received_at": 1}'})
    with pytest.raises(SchemaError, match="odd number"):
        decode_audio_entry(as_fields(AudioAppended(b"\x01", 1.0).encode()))
    bad_type = as_fields(SessionOpened("s1", None, False, 1.0).encode())
    bad_type[b"meta"] = b'{"session_id": 5, "partials": true, "opened_at": 1}'
    with pytest.raises(SchemaError, match="session_id"):
        SessionOpened.decode(bad_type)


def test_turn_messages_round_trip() -> None:
    job = TranscriptionJob(
        kind=JobKind.TURN,
        session_id="s1",
        utterance_index=2,
        revision=0,
        partial_seq=0,
        start_sample=16000,
        pcm=b"\x00\x01" * 8,
        language=None,
        speech_ratio=0.7,
        endpoint_at=5.0,
        enqueued_at=5.1,
        first_utterance=4,
        last_utterance=6,
    )
    assert TranscriptionJob.decode(as_fields(job.encode())) == job
    turn = TurnTranscript(RESULT, 2, 1, 3, False, 9.5)
    assert decode_event(turn.encode()) == turn
    withheld = TurnTranscript(RESULT, 2, 1, 3, False, 9.5, withheld=True)
    assert decode_event(withheld.encode()) == withheld
    older = json.loads(turn.encode())  # from a transcriber before the field
    del older["withheld"]
    assert decode_event(json.dumps(older).encode()) == turn
    shared = RoomTurn(Participant("s1", "Ana", False), 2, (1, 3), RESULT)
    assert decode_event(shared.encode()) == shared
    finished = SegmentationFinished("s1", 4, 2)
    assert decode_event(finished.encode()) == finished


def test_events_of_a_version_without_turns_still_decode() -> None:
    old = json.dumps({"v": 1, "kind": "segmentation.finished", "session_id": "s", "utterances": 3})
    assert decode_event(old.encode()) == SegmentationFinished("s", 3, -1)


def test_a_room_turn_with_bad_indexes_is_refused() -> None:
    shared = json.loads(RoomTurn(Participant("s1", "Ana", False), 0, (1,), RESULT).encode())
    shared["utterance_indexes"] = ["1"]
    with pytest.raises(SchemaError):
        decode_event(json.dumps(shared).encode())
