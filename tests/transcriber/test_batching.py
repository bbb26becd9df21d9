"""Packing utterances into one array and giving segments back to them (no model)."""

from __future__ import annotations

import pytest

from transcriber.batching import FRAMES_PER_SECOND, SegmentOutcome, pack_utterances
from transcriber.results import SegmentStats, WordTiming

GOOD = SegmentStats(0.05, -0.3, 1.3)


def outcome(seek_s: float, text: str, stats: SegmentStats = GOOD) -> SegmentOutcome:
    word = WordTiming(text, seek_s + 0.2, seek_s + 0.5, 0.9)
    return SegmentOutcome(
        round(seek_s * FRAMES_PER_SECOND), text, seek_s, seek_s + 1, stats, (word,)
    )


def test_each_utterance_gets_its_lead_silence_and_its_own_clip() -> None:
    packed = pack_utterances([bytes(32000), bytes(16000)], lead_s=0.2)
    assert packed.offsets == (0.0, 1.2)
    assert packed.clips == [{"start": 0.0, "end": 1.2}, {"start": 1.2, "end": 1.9}]
    assert len(packed.audio) == int(1.9 * 16000)


def test_segments_go_back_to_their_utterance_and_missing_ones_are_none() -> None:
    packed = pack_utterances([bytes(32000), bytes(16000), bytes(48000)], lead_s=0.2)
    assigned = packed.assign([outcome(0.0, "one"), outcome(2.91, "three")])
    assert [a.text if a else None for a in assigned] == ["one", None, "three"]


def test_several_segments_of_one_utterance_are_merged_worst_stats_kept() -> None:
    packed = pack_utterances([bytes(64000)], lead_s=0.2)
    [merged] = packed.assign(
        [outcome(0.0, "first part"), outcome(0.0, "second", SegmentStats(0.1, -0.9, 2.0))]
    )
    assert merged is not None
    assert merged.text == "first part second"
    assert merged.stats.avg_logprob == -0.9 and merged.stats.compression_ratio == 2.0
    assert [w.word for w in merged.words] == ["first part", "second"]


def test_nothing_to_pack_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to pack"):
        pack_utterances([], lead_s=0.2)
