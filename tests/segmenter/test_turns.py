"""Turns in the pure segmenter: utterances grouped up to a longer pause."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from segmenter.core import SegmenterEvent, UtteranceEnded, UtteranceSegmenter
from segmenter.options import SegmenterOptions
from segmenter.turns import TurnEnded
from tests.segmenter.signals import OPTIONS, LoudIsSpeech, run, silence, speech

TURNS = replace(OPTIONS, turn_gap_ms=1000, max_turn_s=28.0, turn_pad_ms=300)


def turns(events: list[SegmenterEvent]) -> list[TurnEnded]:
    return [e for e in events if isinstance(e, TurnEnded)]


def utterances(events: list[SegmenterEvent]) -> list[UtteranceEnded]:
    return [e for e in events if isinstance(e, UtteranceEnded)]


def test_utterances_with_short_pauses_make_one_turn_with_contiguous_audio() -> None:
    pcm = silence(500) + speech(1500) + silence(700) + speech(1200) + silence(600)
    pcm += speech(900) + silence(2000)
    events = run(pcm, TURNS)
    first, second, third = utterances(events)
    [turn] = turns(events)
    assert (turn.first_utterance, turn.last_utterance, turn.turn_index) == (0, 2, 0)
    assert turn.reason == "pause"
    assert turn.start_sample == first.start_sample
    # the turn's audio is the stream from its first utterance's start: every utterance in it
    # sits at its own offset, the pauses between them included
    for u in (first, second, third):
        offset = (u.start_sample - turn.start_sample) * 2
        assert turn.pcm[offset : offset + len(u.pcm)] == u.pcm
    third_end = (third.start_sample - turn.start_sample) * 2 + len(third.pcm)
    assert len(turn.pcm) == third_end + 32 * 300  # plus the turn's padding
    assert not np.frombuffer(turn.pcm[third_end:], "<i2").any()


def test_turn_comes_after_its_last_final_and_a_long_pause_starts_a_new_one() -> None:
    pcm = silence(300) + speech(1500) + silence(1500) + speech(1500) + silence(2000)
    events = run(pcm, TURNS)
    kinds = [type(e).__name__ for e in events if isinstance(e, UtteranceEnded | TurnEnded)]
    assert kinds == ["UtteranceEnded", "TurnEnded", "UtteranceEnded", "TurnEnded"]
    a, b = turns(events)
    assert (a.first_utterance, a.last_utterance, b.first_utterance, b.last_utterance) == (
        0,
        0,
        1,
        1,
    )
    assert (a.turn_index, b.turn_index) == (0, 1)


def test_turn_ends_when_the_pause_from_the_end_of_speech_reaches_the_gap() -> None:
    seg = UtteranceSegmenter(TURNS, LoudIsSpeech())
    events = seg.feed(silence(300) + speech(1500) + silence(900))
    assert utterances(events) and not turns(events)
    events = seg.feed(silence(150))
    assert [t.reason for t in turns(events)] == ["pause"]


def test_finalize_and_end_of_stream_end_the_turn() -> None:
    seg = UtteranceSegmenter(TURNS, LoudIsSpeech())
    seg.feed(silence(300) + speech(1500) + silence(600))
    events = seg.finalize()
    assert [t.reason for t in turns(events)] == ["finalize"]
    seg.feed(speech(1200))
    events = seg.flush()
    [utterance] = utterances(events)
    [turn] = turns(events)
    assert turn.reason == "end_of_stream"
    assert turn.first_utterance == turn.last_utterance == utterance.utterance_index == 1
    assert seg.turns_ended == 2


def test_long_speech_closes_the_turn_before_it_would_pass_one_window() -> None:
    phrase = speech(2500) + silence(600)  # pauses shorter than the turn gap
    events = run(silence(300) + phrase * 14 + silence(2000), TURNS)
    found = turns(events)
    assert len(found) >= 2
    assert found[0].reason == "max_length"
    assert all(len(t.pcm) / 32000 <= TURNS.max_turn_s for t in found)
    # every utterance belongs to exactly one turn, in order
    covered = [i for t in found for i in range(t.first_utterance, t.last_utterance + 1)]
    assert covered == [u.utterance_index for u in utterances(events)]


def test_cut_at_the_cap_never_puts_the_next_speech_into_the_turn() -> None:
    events = run(silence(300) + speech(32000) + silence(2000), TURNS)
    first, *_ = turns(events)
    assert first.reason == "max_length"
    following = utterances(events)[first.last_utterance + 1]
    assert first.start_sample + len(first.pcm) // 2 <= following.start_sample
    assert len(first.pcm) / 32000 <= TURNS.max_turn_s


def test_a_click_alone_makes_no_turn() -> None:
    events = run(silence(500) + speech(90) + silence(3000), TURNS)
    assert events == []


def test_an_open_turn_survives_a_snapshot_and_restore() -> None:
    pcm = silence(500) + speech(2000) + silence(700) + speech(1200) + silence(2000)
    whole = run(pcm, TURNS, chunk=778)
    first = UtteranceSegmenter(TURNS, LoudIsSpeech())
    split = len(silence(500) + speech(2000) + silence(600)) + 334
    events = first.feed(pcm[:split])
    state = first.snapshot()
    assert state is not None and state.turn is not None and state.turn.last_utterance == 0
    second = UtteranceSegmenter.restore(TURNS, LoudIsSpeech(), state)
    for i in range(split, len(pcm), 778):
        events += second.feed(pcm[i : i + 778])
    assert events + second.flush() == whole
    assert len(turns(whole)) == 1


def test_inconsistent_turn_options_are_refused() -> None:
    with pytest.raises(ValueError, match="turn_gap_ms"):
        SegmenterOptions(hangover_ms=450, turn_gap_ms=300)
    with pytest.raises(ValueError, match="max_turn_s"):
        SegmenterOptions(max_utterance_s=15.0, max_turn_s=12.0)
