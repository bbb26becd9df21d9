"""OpenAI's Realtime transcription API as a face of the session: its configuration before the
first audio, its client events, and the session's finals and turns as items' events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ingest.protocol import ClientCommand
from ingest.realtime import RealtimeFace, parse_realtime_request
from shared.audio import Encoding
from shared.client_messages import Error, Transcript, Turn, encode
from shared.errors import ProtocolError

SESSION = "sABC"
ODD_BYTES = base64.b64encode(b"abc").decode()


def face(**kwargs: Any) -> RealtimeFace:
    options: dict[str, Any] = {
        "english_only": True,
        "hold_after_gap_s": 0.4,
        "max_audio_bytes": 65536,
    }
    return RealtimeFace(SESSION, **(options | kwargs))


def event(kind: str, **body: Any) -> str:
    return json.dumps({"type": kind, **body})


def replies(face_: RealtimeFace, text: str) -> list[dict[str, Any]]:
    return [json.loads(r) for r in face_.read(text).replies]


def append(samples: int = 2400) -> str:
    return event("input_audio_buffer.append", audio=base64.b64encode(bytes(2 * samples)).decode())


def update_input(**audio_input: Any) -> str:
    """A ``session.update`` of ``session.audio.input``."""
    return event("session.update", session={"audio": {"input": audio_input}})


def final(index: int, text: str, start: float, end: float) -> str:
    return encode(
        Transcript(SESSION, index + 2, True, f"{SESSION}-{index}", text, start, end, "anonymous")
    )


def partial(index: int, text: str, start: float) -> str:
    return encode(
        Transcript(
            SESSION, 90 + index, False, f"{SESSION}-{index}", text, start, start + 1, "anonymous"
        )
    )


def turn(number: int, indexes: list[int], text: str, start: float, end: float) -> str:
    return encode(
        Turn(
            SESSION, 50 + number, f"{SESSION}-t{number}", tuple(f"{SESSION}-{i}" for i in indexes),
            text, start, end, "en", 0.99, (), "anonymous", True,
        )
    )  # fmt: skip


def frames(face_: RealtimeFace, *messages: str) -> list[dict[str, Any]]:
    return [json.loads(f) for m in messages for f in face_.frames(m)]


def test_only_transcription_sessions_are_served() -> None:
    asked = parse_realtime_request({"intent": ["transcription"], "room": ["7"], "name": ["Ann"]})
    assert asked.ours == {"room": "7", "name": "Ann"} and asked.model is None
    for query in ({}, {"intent": ["conversation"]}, {"intent": ["transcription"], "voice": ["x"]}):
        with pytest.raises(ProtocolError):
            parse_realtime_request(query)


def test_the_greeting_shows_openais_defaults() -> None:
    created = json.loads(face().greeting())
    assert created["type"] == "session.created" and created["event_id"]
    session = created["session"]
    assert session["type"] == "transcription" and session["id"] == SESSION
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert face().stream_query() == {
        "encoding": "pcm_s16le", "sample_rate": "24000", "language": "en", "partials": "true"
    }  # fmt: skip


def test_a_session_update_in_the_current_shape_configures_the_session() -> None:
    realtime = face(english_only=False)
    update = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {
                    "model": "gpt-4o-transcribe", "language": "cy", "prompt": "Macsen, Caerdydd"
                },
                "turn_detection": None,
                "noise_reduction": {"type": "near_field"},
            }
        },
    }  # fmt: skip
    [updated] = replies(realtime, event("session.update", session=update))
    assert updated["type"] == "session.updated"
    shown = updated["session"]["audio"]["input"]
    assert shown["format"] == {"type": "audio/pcmu"} and shown["turn_detection"] is None
    assert shown["transcription"]["language"] == "cy"
    config = realtime.config
    assert (config.encoding, config.sample_rate, config.language) == (Encoding.MULAW, 8000, "cy")
    assert config.vocabulary == "Macsen, Caerdydd" and config.model == "gpt-4o-transcribe"
    assert realtime.stream_query()["partials"] == "false"  # no VAD events to time


def test_the_older_transcription_session_update_is_answered_in_its_shape() -> None:
    realtime = face()
    session = {
        "input_audio_format": "g711_alaw",
        "input_audio_transcription": {"model": "whisper-1", "language": "en"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 700},
    }
    [updated] = replies(realtime, event("transcription_session.update", session=session))
    assert updated["type"] == "transcription_session.updated"
    assert updated["session"]["input_audio_format"] == "g711_alaw"
    assert updated["session"]["turn_detection"]["silence_duration_ms"] == 700
    assert realtime.config.encoding is Encoding.ALAW


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("not json", "invalid_json", None),
        (event("response.create"), "unsupported_event", "type"),
        (event("input_audio_buffer.flush"), "invalid_value", "type"),
        (event("input_audio_buffer.append", audio="%%%"), "invalid_value", "audio"),
        (event("input_audio_buffer.append", audio=ODD_BYTES), "invalid_value", "audio"),
        (event("input_audio_buffer.commit"), "input_audio_buffer_commit_empty", None),
        (event("session.update", session={"type": "realtime"}), "invalid_value", "session.type"),
        (event("session.update", session={"voice": "alloy"}), "unknown_parameter", None),
        (update_input(format={"type": "audio/pcm", "rate": 16000}),
         "invalid_value", "session.audio.input.format.rate"),
        (update_input(transcription={"language": "fr"}),
         "unsupported_language", "session.audio.input.transcription.language"),
        (update_input(turn_detection={"type": "push"}),
         "invalid_value", "session.audio.input.turn_detection.type"),
    ],
)  # fmt: skip
def test_a_bad_event_gets_an_error_event_and_the_session_carries_on(
    text: str, code: str, param: str | None
) -> None:
    realtime = face()
    [error] = replies(realtime, text)
    assert error["type"] == "error"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["message"]
    assert realtime.config == face().config  # nothing changed
    assert realtime.read(append()).begins  # and the session still opens


def test_the_first_audio_opens_the_session_and_fixes_its_configuration() -> None:
    realtime = face()
    first = realtime.read(append(2400))
    assert first.begins and first.audio == bytes(4800) and first.command is None
    later = realtime.read(append(480))
    assert not later.begins and len(later.audio) == 960
    same = update_input(format={"type": "audio/pcm", "rate": 24000})
    assert replies(realtime, same)[0]["type"] == "session.updated"
    [refused] = replies(realtime, update_input(transcription={"prompt": "Warner"}))
    assert refused["error"]["code"] == "session_already_started"


def test_commit_finalizes_and_clear_is_acknowledged() -> None:
    realtime = face()
    realtime.read(append())
    committed = realtime.read(event("input_audio_buffer.commit"))
    assert committed.command is ClientCommand.FINALIZE and committed.replies == ()  # VAD: later
    cleared = realtime.read(event("input_audio_buffer.clear"))
    assert [json.loads(r)["type"] for r in cleared.replies] == ["input_audio_buffer.cleared"]


def test_a_turn_is_an_item_its_finals_deltas_and_its_settled_text_completed() -> None:
    realtime = face()
    out = frames(
        realtime,
        partial(0, "the two stray", 0.2),
        final(0, "The two stray kittens", 0.2, 1.9),
        final(1, "gradually make themselves at home.", 2.0, 3.4),  # 0.1 s on: the same turn
        turn(0, [0, 1], "The two stray kittens gradually make themselves at home.", 0.2, 3.4),
    )
    kinds = [e["type"] for e in out]
    assert kinds == [
        "input_audio_buffer.speech_started",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ]
    item = out[0]["item_id"]
    assert all(e["item_id"] == item for e in out)
    assert out[0]["audio_start_ms"] == 200 and out[3]["audio_end_ms"] == 3400
    assert [e["delta"] for e in out[1:3]] == [
        "The two stray kittens",
        " gradually make themselves at home.",
    ]
    assert out[4]["previous_item_id"] is None
    assert out[5]["transcript"] == "The two stray kittens gradually make themselves at home."
    assert out[5]["usage"] == {"type": "duration", "seconds": 3.2}
    assert len({e["event_id"] for e in out}) == len(out)


def test_a_final_after_a_pause_waits_for_the_turn_before_it() -> None:
    realtime = face()
    first = frames(realtime, final(0, "She doesn't pick them up.", 0.0, 2.0))
    held = frames(realtime, final(1, "But just having them", 3.5, 5.0))  # after 1.5 s
    assert held == []  # it may begin the next turn: its item is known once the first settles
    settled = frames(realtime, turn(0, [0], "She doesn't pick them up.", 0.0, 2.0))
    kinds = [e["type"] for e in settled]
    assert (
        kinds[-4:-1]
        == [
            "conversation.item.input_audio_transcription.completed",
            "input_audio_buffer.speech_started",
            "conversation.item.input_audio_transcription.delta",
        ][:3]
        or kinds
    )
    completed = next(e for e in settled if e["type"].endswith("completed"))
    second = [e for e in settled if e["type"].endswith("delta")]
    assert completed["item_id"] == first[0]["item_id"]
    assert (
        second[-1]["delta"] == "But just having them"
        and second[-1]["item_id"] != completed["item_id"]
    )
    after = frames(realtime, turn(1, [1], "But just having them in the room.", 3.5, 6.0))
    committed = next(e for e in after if e["type"] == "input_audio_buffer.committed")
    assert committed["previous_item_id"] == completed["item_id"]


def test_a_held_final_that_belongs_to_the_turn_goes_in_its_item() -> None:
    realtime = face()
    frames(realtime, final(0, "Ask not", 0.0, 1.0))
    assert frames(realtime, final(1, "what your country", 1.6, 2.6)) == []  # a pause of 0.6 s
    out = frames(realtime, turn(0, [0, 1], "Ask not what your country", 0.0, 2.6))
    deltas = [e for e in out if e["type"].endswith("delta")]
    completed = out[-1]
    assert [d["delta"] for d in deltas] == [" what your country"]
    assert completed["type"].endswith("completed") and deltas[0]["item_id"] == completed["item_id"]


def test_without_vad_the_client_commits_and_no_speech_events_are_sent() -> None:
    realtime = face()
    realtime.read(update_input(turn_detection=None))
    realtime.read(append())
    committed = realtime.read(event("input_audio_buffer.commit"))
    [said] = [json.loads(r) for r in committed.replies]
    assert said["type"] == "input_audio_buffer.committed"
    out = frames(
        realtime, final(0, "Hello there.", 0.1, 1.2), turn(0, [0], "Hello there.", 0.1, 1.2)
    )
    assert [e["type"] for e in out] == [
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert {e["item_id"] for e in out} == {said["item_id"]}
    assert realtime.read(event("input_audio_buffer.commit")).replies  # empty: refused


def test_the_sessions_errors_are_error_events() -> None:
    [error] = frames(face(), encode(Error(SESSION, 9, "rate_limited", "too fast")))
    assert error["type"] == "error"
    assert error["error"] == {
        "type": "server_error", "code": "rate_limited", "message": "too fast", "param": None,
        "event_id": None,
    }  # fmt: skip
