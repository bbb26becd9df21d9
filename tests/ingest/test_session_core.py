"""The session's decisions without sockets or Redis: events in, effects out."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions, SessionLimits
from ingest.protocol import StreamParams
from ingest.reading import room_languages
from ingest.session_core import Fail, Send, SessionCore, Share, ShareTurn, Translate
from shared.audio import Encoding
from shared.errors import ProtocolError
from shared.schema import (
    Commit,
    FinalTranscript,
    PartialTranscript,
    Participant,
    RoomPresence,
    RoomTranscript,
    RoomTurn,
    SegmentationFinished,
    TranscriptResult,
    TranslationDone,
    TurnTranscript,
    UtteranceFailed,
)

PARAMS = StreamParams(16000, Encoding.PCM_S16LE, "en", True, "Ana", None, False, ())
OPTIONS = IngestOptions(
    "127.0.0.1", 0, 65536, 100, 60.0, "tiny.en", True, translate_chars_per_minute=40
)
NOW = 1_000_000.0
OTHER = Participant("s2", "Bo", False)


def core(params: StreamParams = PARAMS, options: IngestOptions = OPTIONS) -> SessionCore:
    return SessionCore("s1", params, options, IngestMetrics(CollectorRegistry()), now=0.0)


def result(index: int, text: str = "words", seq: int = 0, sid: str = "s1") -> TranscriptResult:
    return TranscriptResult(sid, index, seq, text, 0.0, 1.0, "en", 1.0)


def final(index: int, text: str = "words") -> FinalTranscript:
    return FinalTranscript(result(index, text), Commit(index, 0, NOW - 0.25, NOW - 0.5))


def turn(index: int, first: int, last: int, text: str = "words") -> TurnTranscript:
    return TurnTranscript(result(last, text), index, first, last, False, NOW)


def sent(effects: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(e.message) for e in effects if isinstance(e, Send)]


def test_finals_go_out_in_order_numbered_with_their_timing() -> None:
    session = core()
    assert session.event(final(1), now=NOW) == []
    out = sent(session.event(final(0), now=NOW))
    assert [(m["type"], m["utterance_id"], m["seq"]) for m in out] == [
        ("transcript", "s1-0", 1),
        ("transcript", "s1-1", 2),
    ]
    assert out[0]["server_timing"]["endpoint_to_send_s"] == 0.25  # since the endpoint
    assert session.event(final(0), now=NOW) == []  # once


def test_each_message_keeps_its_own_number_when_one_event_releases_several() -> None:
    session = core()
    session.event(final(0), now=NOW)
    effects = session.event(turn(0, 0, 0), now=NOW) + session.event(final(2), now=NOW)
    effects += session.event(final(1), now=NOW)
    sends = [e for e in effects if isinstance(e, Send)]
    assert [e.seq for e in sends] == [json.loads(e.message)["seq"] for e in sends] == [2, 3, 4]


def test_partials_only_when_asked_for() -> None:
    quiet = core(replace(PARAMS, partials=False))
    assert quiet.event(PartialTranscript(result(0, seq=1)), now=NOW) == []
    chatty = core()
    (partial,) = sent(chatty.event(PartialTranscript(result(0, seq=1)), now=NOW))
    assert partial["is_final"] is False


def test_a_session_in_a_room_shares_what_it_says() -> None:
    session = core(replace(PARAMS, room="42"))
    session.joined([OTHER])
    partial = session.event(PartialTranscript(result(0, seq=1)), now=NOW)
    assert [type(e) for e in partial] == [Send, Share]
    said = session.event(final(0), now=NOW)
    assert said[1] == Share(True, result(0))
    turned = session.event(turn(0, 0, 0), now=NOW)
    assert [type(e) for e in turned] == [Send, ShareTurn]
    assert isinstance(turned[1], ShareTurn) and turned[1].utterance_indexes == (0,)


def test_the_others_finals_and_turns_come_once_and_ours_not_at_all() -> None:
    session = core(replace(PARAMS, room="42"))
    (members,) = sent([session.joined([OTHER, session.speaker])])
    assert [m["name"] for m in members["participants"]] == ["Ana", "Bo"]
    theirs = RoomTranscript(OTHER, True, result(3, "hello", sid="s2"))
    (message,) = session.event(theirs, now=NOW)
    assert isinstance(message, Send) and message.mark == "r:s2:3"
    assert session.event(theirs, now=NOW) == []  # again, from the room's log
    ours = RoomTranscript(session.speaker, True, result(0))
    assert session.event(ours, now=NOW) == []
    their_turn = RoomTurn(OTHER, 1, (2, 3), result(3, "hello", sid="s2"))
    assert len(session.event(their_turn, now=NOW)) == 1
    assert session.event(their_turn, now=NOW) == []


def test_presence_is_a_delta_and_updates_the_members() -> None:
    session = core(replace(PARAMS, room="42"))
    session.joined([])
    joined = sent(session.event(RoomPresence(True, OTHER), now=NOW))
    assert [(m["type"], m["name"]) for m in joined] == [("room.join", "Bo")]
    assert session.event(RoomPresence(True, session.speaker), now=NOW) == []
    (members,) = sent([session.participants()])
    assert [m["session_id"] for m in members["participants"]] == ["s1", "s2"]
    session.event(RoomPresence(False, OTHER), now=NOW)
    (members,) = sent([session.participants()])
    assert [m["session_id"] for m in members["participants"]] == ["s1"]


def test_a_turn_asks_for_its_translations_until_they_come() -> None:
    session = core(replace(PARAMS, translate=("fr", "de")))
    session.event(final(0), now=NOW)
    effects = session.event(turn(0, 0, 0, "bonjour"), now=NOW)
    assert isinstance(effects[-1], Translate) and effects[-1].turn_index == 0
    assert session.translations_pending
    done = TranslationDone("s1", "Ana", 0, "en", "fr", "bonjour", turn_index=0)
    (translation,) = sent(session.event(done, now=NOW))
    assert translation["turn_id"] == "s1-t0"
    assert session.event(done, now=NOW) == []  # the second channel's copy
    assert session.translations_pending  # German still to come
    session.translations_abandoned()
    assert not session.translations_pending


def test_translations_past_the_budget_are_refused_one_per_language() -> None:
    session = core(replace(PARAMS, translate=("fr", "de")))
    session.event(final(0), now=NOW)
    session.event(turn(0, 0, 0, "x" * 30), now=NOW)  # refused once its turn is sent
    long = result(0, "x" * 30)
    # 30 characters each, 40 a minute: the first language is paid for, the second refused
    assert session.affordable(long, ("fr", "de"), now=0.0) == (["fr"], ["de"])
    assert session.affordable(long, ("fr", "de"), now=0.0) == ([], ["fr", "de"])
    refused = sent(session.translations_refused(long, 0, ("fr", "de"), now=NOW))
    assert [(m["target_language"], m["error"]["code"]) for m in refused] == [
        ("fr", "rate_limited"),
        ("de", "rate_limited"),
    ]


def test_the_languages_most_readers_read_come_first() -> None:
    members = [
        Participant(f"r{i}", "R", True, read=code)
        for i, code in enumerate(["de", "fr", "fr", "it", "fr", "de"])
    ]
    assert room_languages(replace(PARAMS, translate=("cy",)), members) == ("cy", "fr", "de", "it")


def joined_room(params: StreamParams, *members: Participant) -> SessionCore:
    session = core(replace(params, room="42"))
    session.joined([session.speaker, *members])
    return session


def test_a_turn_is_translated_once_into_every_language_the_room_reads() -> None:
    readers = (
        Participant("s2", "Bo", True, read="cy"),
        Participant("s3", "Cy", True, read="fr"),
        Participant("s4", "Di", True, read="cy"),  # a second Welsh reader: no second job
        Participant("s5", "Ed", True, read="en-GB"),  # the spoken language: nothing to do
        Participant("s6", "Fa", True),  # reads whatever is spoken
    )
    session = joined_room(replace(PARAMS, translate=("de",)), *readers)
    session.event(final(0), now=NOW)
    effects = session.event(turn(0, 0, 0, "hello"), now=NOW)
    (asked,) = [e for e in effects if isinstance(e, Translate)]
    assert asked.languages == ("de", "cy", "fr")
    # the speaker waits only for what it reads itself
    session.event(TranslationDone("s1", "Ana", 0, "en", "cy", "helo", turn_index=0), now=NOW)
    assert session.translations_pending
    (german,) = sent(
        session.event(TranslationDone("s1", "Ana", 0, "en", "de", "hallo", turn_index=0), now=NOW)
    )
    assert german["target_language"] == "de" and not session.translations_pending
    # a reader joining later counts from then on; one leaving, no more
    session.event(RoomPresence(True, Participant("s7", "Gu", True, read="es")), now=NOW)
    session.event(RoomPresence(False, readers[1]), now=NOW)
    session.event(final(1), now=NOW)
    effects = session.event(turn(1, 1, 1, "again"), now=NOW)
    (asked,) = [e for e in effects if isinstance(e, Translate)]
    assert asked.languages == ("de", "cy", "es")


def test_a_reader_receives_the_others_translations_into_its_language_only() -> None:
    reader = joined_room(replace(PARAMS, listen=True, read="cy"), OTHER)
    into = {
        lang: TranslationDone("s2", "Bo", 0, "en", lang, f"in {lang}", turn_index=0)
        for lang in ("cy", "fr")
    }
    bo_turn = RoomTurn(OTHER, 0, (0,), result(0, "hello", sid="s2"))
    reader.event(bo_turn, now=NOW)
    (welsh,) = sent(reader.event(into["cy"], now=NOW))
    assert welsh["target_language"] == "cy" and welsh["speaker"] == "Bo"
    assert reader.event(into["fr"], now=NOW) == []
    assert sent(reader.history([into["fr"], into["cy"]])) == []  # cy already sent, fr not read
    everything = joined_room(replace(PARAMS, listen=True), OTHER)  # no reading language
    shown = sent(everything.history([bo_turn, *into.values()]))
    assert [m["type"] for m in shown] == ["turn", "translation", "translation"]


def test_a_translation_that_comes_before_its_turn_waits_for_it() -> None:
    reader = joined_room(replace(PARAMS, listen=True, read="cy"), OTHER)
    early = TranslationDone("s2", "Bo", 1, "en", "cy", "helo", turn_index=0)
    assert reader.event(early, now=NOW) == []  # the transcriber was quicker than Bo's turn
    shown = sent(reader.event(RoomTurn(OTHER, 0, (1,), result(1, "hello", sid="s2")), now=NOW))
    assert [(m["type"], m.get("text")) for m in shown] == [
        ("turn", "hello"),
        ("translation", "helo"),
    ]
    assert reader.event(early, now=NOW) == []  # once
    # in the room's history too: a translation logged before its turn comes after it
    late = joined_room(replace(PARAMS, listen=True, read="cy"), OTHER)
    logged = [early, RoomTurn(OTHER, 0, (1,), result(1, "hello", sid="s2"))]
    assert [m["type"] for m in sent(late.history(logged))] == ["turn", "translation"]
    # the speaker's own, from the transcriber, before the turn is released
    speaker = core(replace(PARAMS, read="en", language="cy"))
    own = TranslationDone("s1", "Ana", 0, "cy", "en", "hello", turn_index=0)
    assert speaker.event(own, now=NOW) == []
    speaker.event(final(0), now=NOW)
    shown = sent(speaker.event(turn(0, 0, 0, "helo"), now=NOW))
    assert [m["type"] for m in shown] == ["turn", "translation"]


def test_the_transcribers_are_told_the_languages_when_they_change() -> None:
    session = joined_room(PARAMS, Participant("s2", "Bo", True, read="en"))
    first = session.targets_changed(whisper=True)
    assert first is not None and first.languages == ("en",) and first.room == "42"
    assert session.targets_changed(whisper=True) is None  # unchanged: not written again
    session.event(RoomPresence(True, Participant("s3", "Cy", True, read="cy")), now=NOW)
    changed = session.targets_changed(whisper=True)
    assert changed is not None and changed.languages == ("en", "cy")
    listener = joined_room(replace(PARAMS, listen=True, read="cy"))
    assert listener.targets_changed(whisper=True) is None  # says nothing to translate


def test_languages_no_translator_serves_are_told_once_each() -> None:
    session = joined_room(PARAMS, Participant("s2", "Bo", True, read="fr"))
    said = result(0, "hello")
    first = session.unserved(said, 0, ("fr",), "nobody serves {source} -> {target}")
    assert [(d.target_language, d.error_code, d.error_message) for d in first] == [
        ("fr", "translation_unavailable", "nobody serves en -> fr")
    ]
    assert session.unserved(result(1, "again"), 1, ("fr",), "x") == []


def test_a_failed_utterance_is_an_error_in_its_place() -> None:
    session = core()
    (error,) = sent(session.event(UtteranceFailed("s1", 0, "no model"), now=NOW))
    assert (error["code"], error["utterance_id"]) == ("transcription_failed", "s1-0")
    session.event(SegmentationFinished("s1", 1), now=NOW)
    assert session.delivery.complete


def test_finals_too_far_out_of_order_fail_the_session() -> None:
    session = core()
    effects: list[Any] = []
    for index in range(1, 5000):
        effects = session.event(final(index), now=NOW)
        if effects:
            break
    assert effects == [Fail(1011, "internal error")]


def test_audio_is_checked_counted_and_converted() -> None:
    session = core(replace(PARAMS, sample_rate=8000, encoding=Encoding.MULAW))
    pcm = session.audio(bytes([0xFF]) * 800, now=0.0)  # 100 ms of mu-law silence
    assert session.client_samples == 800
    assert session.duration_s == 0.1
    tail = session.audio_tail()
    assert len(pcm + tail) == 1600 * 2  # at 16 kHz
    assert session.samples_in == 1600


def test_bad_or_too_fast_audio_ends_the_session() -> None:
    session = core()
    with pytest.raises(ProtocolError) as odd:
        session.audio(b"\x00\x01\x02", now=0.0)
    assert odd.value.close_code == 1007
    limits = SessionLimits(max_audio_rate=1.0, audio_burst_s=1.0)
    strict = core(options=replace(OPTIONS, limits=limits))
    second = bytes(32000)
    strict.audio(second, now=0.0)
    with pytest.raises(ProtocolError) as fast:
        for _ in range(5):
            strict.audio(second, now=0.0)
    assert fast.value.close_code == 4029


def test_a_participant_joining_gets_the_rooms_history_marked_once() -> None:
    session = core(replace(PARAMS, room="r"))
    said = msgspec.structs.replace(result(0, "earlier words", sid="s2"), wall_start=NOW - 30)
    logged = [
        RoomTranscript(OTHER, True, said),
        RoomTranscript(OTHER, False, result(1, "a partial", sid="s2")),
        RoomTurn(OTHER, 0, (0,), said),
        TranslationDone("s2", "Bo", 0, "en", "cy", "geiriau", turn_index=0),
        RoomTranscript(Participant("s1", "Ana", False), True, result(0)),  # ours: not shown
    ]
    out = sent(session.history(logged))
    assert [(m["type"], m.get("history")) for m in out] == [
        ("transcript", True),
        ("turn", True),
        ("translation", True),
    ]
    assert out[0]["wall_start"] == NOW - 30 and out[0]["speaker"] == "Bo"
    assert out[2]["turn_id"] == "s2-t0" and out[2]["text"] == "geiriau"
    # the same coming live (subscribed before the log was read) is not sent again
    assert session.event(RoomTurn(OTHER, 0, (0,), said), now=NOW) == []
    assert (
        session.event(TranslationDone("s2", "Bo", 0, "en", "cy", "geiriau", turn_index=0), now=NOW)
        == []
    )
    assert session.history(logged) == []


def test_finals_and_turns_carry_the_wall_time_of_their_start() -> None:
    session = core()
    timed = FinalTranscript(
        msgspec.structs.replace(result(0), wall_start=NOW - 3.5),
        Commit(0, 0, NOW - 0.25, NOW - 0.5),
    )
    out = sent(session.event(timed, now=NOW))
    assert out[0]["wall_start"] == NOW - 3.5 and "history" not in out[0]
    settled = TurnTranscript(
        msgspec.structs.replace(result(0), wall_start=NOW - 3.4), 0, 0, 0, False, NOW
    )
    assert sent(session.event(settled, now=NOW))[0]["wall_start"] == NOW - 3.4
    untimed = sent(core().event(final(0), now=NOW))[0]
    assert "wall_start" not in untimed  # unknown (an older segmenter): left out


def test_empty_audio_frames_are_counted_as_frames() -> None:
    """An empty frame costs no audio time; a flood of them is still refused (4029)."""
    limits = SessionLimits(max_audio_frames_per_s=500, audio_frame_burst=1000)
    session = core(options=replace(OPTIONS, limits=limits))
    for _ in range(1000):
        assert session.audio(b"", now=0.0) == b""
    with pytest.raises(ProtocolError) as refused:
        session.audio(b"", now=0.0)
    assert (refused.value.code, refused.value.close_code) == ("too_fast", 4029)
    steady = core(options=replace(OPTIONS, limits=limits))
    for i in range(5000):  # 400 frames a second for 12.5 s: a browser's worklet at 48 kHz
        steady.audio(b"\0\0" * 40, now=i / 400)
