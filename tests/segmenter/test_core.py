"""The pure segmenter, driven by a transparent detector: loud frames are speech."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from segmenter.core import (
    PartialReady,
    SegmenterEvent,
    SpeculationReady,
    SpeechResumed,
    UtteranceEnded,
    UtteranceSegmenter,
)
from segmenter.options import SegmenterOptions
from tests.segmenter.signals import (
    FRAME,
    OPTIONS,
    LoudIsSpeech,
    quiet_speech,
    run,
    silence,
    speech,
)


def ended(events: list[SegmenterEvent]) -> list[UtteranceEnded]:
    return [e for e in events if isinstance(e, UtteranceEnded)]


def test_noise_free_silence_yields_nothing() -> None:
    assert run(silence(5000)) == []


def test_utterance_keeps_pre_speech_padding_and_ends_after_hangover() -> None:
    events = run(silence(1000) + speech(1200) + silence(1000))
    [utterance] = ended(events)
    assert utterance.reason == "pause"
    start_s = utterance.start_sample / 16000
    assert 0.65 <= start_s <= 1.0  # onset at 1.0 s, up to 300 ms of padding before it
    duration_s = len(utterance.pcm) / 32000
    # speech, plus the padding, plus the hangover that ended it
    assert 1.2 + 0.45 <= duration_s <= 1.2 + 0.45 + 0.35 + 0.06


def test_click_is_dropped_but_a_short_word_is_kept() -> None:
    assert ended(run(silence(500) + speech(90) + silence(1000))) == []
    [word] = ended(run(silence(500) + speech(240) + silence(1000)))
    assert word.reason == "pause"


def test_pause_shorter_than_hangover_does_not_split() -> None:
    events = run(silence(300) + speech(1500) + silence(300) + speech(1500) + silence(1000))
    assert len(ended(events)) == 1


def test_pause_longer_than_hangover_splits_in_order() -> None:
    events = run(silence(300) + speech(1500) + silence(800) + speech(1500) + silence(1000))
    first, second = ended(events)
    assert (first.utterance_index, second.utterance_index) == (0, 1)
    assert first.start_sample + len(first.pcm) // 2 <= second.start_sample


def test_speculation_at_first_pause_is_committed_when_pause_holds() -> None:
    events = run(silence(300) + speech(1500) + silence(1000))
    [spec] = [e for e in events if isinstance(e, SpeculationReady)]
    [utterance] = ended(events)
    assert utterance.committed_revision == spec.revision
    # the speculation saw all the speech: what followed it was silence
    assert spec.pcm == utterance.pcm[: len(spec.pcm)]
    assert not any(np.frombuffer(utterance.pcm[len(spec.pcm) :], "<i2"))


def test_speech_resuming_voids_the_speculation() -> None:
    events = run(silence(300) + speech(1500) + silence(240) + speech(1500) + silence(1000))
    specs = [e for e in events if isinstance(e, SpeculationReady)]
    resumed = [e for e in events if isinstance(e, SpeechResumed)]
    assert [s.revision for s in specs] == [1, 2]
    assert [(r.utterance_index, r.revision) for r in resumed] == [(0, 1)]
    [utterance] = ended(events)
    assert utterance.committed_revision == 2
    assert len(specs[1].pcm) > len(specs[0].pcm)


def test_partials_while_speaking_carry_the_utterance_so_far() -> None:
    events = run(silence(300) + speech(3000) + silence(1000))
    partials = [e for e in events if isinstance(e, PartialReady)]
    assert len(partials) >= 3
    assert [p.partial_seq for p in partials] == list(range(1, len(partials) + 1))
    assert all(len(b.pcm) > len(a.pcm) for a, b in itertools.pairwise(partials))
    no_partials = run(silence(300) + speech(3000), replace(OPTIONS, partial_interval_ms=0))
    assert not any(isinstance(e, PartialReady) for e in no_partials)


def test_long_utterance_ends_on_a_shorter_pause() -> None:
    # a 330 ms pause does not end a 2 s utterance but does end a 9 s one
    short = run(silence(300) + speech(2000) + silence(330) + speech(1000) + silence(1000))
    assert len(ended(short)) == 1
    long = run(silence(300) + speech(9000) + silence(330) + speech(1000) + silence(1000))
    assert len(ended(long)) == 2


def test_max_length_cuts_at_the_quietest_point() -> None:
    options = replace(OPTIONS, max_utterance_s=6.0, cut_search_s=3.0, long_utterance_s=30.0)
    # continuous speech with one quiet dip (still speech to the VAD) at 4.5 s
    pcm = silence(300) + speech(4200) + quiet_speech(90) + speech(4000) + silence(1000)
    first, second = ended(run(pcm, options))
    assert first.reason == "max_length"
    cut_s = (first.start_sample + len(first.pcm) // 2) / 16000
    assert 0.3 + 4.2 <= cut_s <= 0.3 + 4.2 + 0.09 + 0.03
    assert second.start_sample == first.start_sample + len(first.pcm) // 2


def test_finalize_ends_the_utterance_now() -> None:
    seg = UtteranceSegmenter(OPTIONS, LoudIsSpeech())
    seg.feed(silence(300) + speech(1000))
    [utterance] = ended(seg.finalize())
    assert utterance.reason == "finalize"
    assert seg.finalize() == []


def test_flush_includes_the_partial_frame_and_counts_utterances() -> None:
    seg = UtteranceSegmenter(OPTIONS, LoudIsSpeech())
    pcm = silence(300) + speech(1000) + b"\x01\x00" * 100
    seg.feed(pcm)
    [utterance] = ended(seg.flush())
    assert utterance.reason == "end_of_stream"
    assert utterance.start_sample * 2 + len(utterance.pcm) == len(pcm)
    assert seg.utterances_ended == 1


def test_chunking_does_not_change_the_result() -> None:
    pcm = silence(500) + speech(2000) + silence(700) + speech(900) + silence(1000)
    assert run(pcm, chunk=2) == run(pcm, chunk=FRAME * 2) == run(pcm, chunk=len(pcm))


def test_odd_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        UtteranceSegmenter(OPTIONS, LoudIsSpeech()).feed(b"\x00")


def test_inconsistent_options_are_refused() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        SegmenterOptions(frame_ms=25)
    with pytest.raises(ValueError, match="speculate_after_ms"):
        SegmenterOptions(speculate_after_ms=400, long_hangover_ms=300)


def test_a_restored_snapshot_carries_on_exactly() -> None:
    """Cut the audio anywhere between utterances, restore, feed the rest: the same events."""
    pcm = silence(500) + speech(2000) + silence(900) + speech(1200) + silence(700)
    whole = run(pcm, chunk=778)
    first = UtteranceSegmenter(OPTIONS, LoudIsSpeech())
    split = len(silence(500) + speech(2000) + silence(600)) + 334  # after the first end
    events = first.feed(pcm[:split])
    state = first.snapshot()
    assert state is not None and state.utterances_ended == 1 and state.pending
    second = UtteranceSegmenter.restore(OPTIONS, LoudIsSpeech(), state)
    for i in range(split, len(pcm), 778):
        events += second.feed(pcm[i : i + 778])
    assert events + second.flush() == whole


def test_no_snapshot_inside_an_utterance() -> None:
    segmenter = UtteranceSegmenter(OPTIONS, LoudIsSpeech())
    segmenter.feed(silence(300) + speech(600))
    assert segmenter.in_utterance and segmenter.snapshot() is None
