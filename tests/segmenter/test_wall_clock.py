"""The wall time each sample of a stream arrived, from the entries' stamps."""

from __future__ import annotations

import pytest

from segmenter.wall_clock import WallClock


def test_a_sample_arrived_with_its_entry_less_what_followed_it() -> None:
    clock = WallClock()
    assert clock.at(0) == 0.0  # nothing yet
    clock.received(1600, at=100.1)  # samples 0..1599, 0.1 s, arrived at 100.1
    clock.received(1600, at=100.2)
    assert clock.at(0) == pytest.approx(100.0)
    assert clock.at(1600) == pytest.approx(100.1)
    assert clock.at(2400) == pytest.approx(100.15)
    assert clock.at(3200) == pytest.approx(100.2)
    assert clock.samples == 3200


def test_a_pause_in_sending_shows_on_the_timeline() -> None:
    clock = WallClock()
    clock.received(16000, at=101.0)
    clock.received(16000, at=150.0)  # the client sent nothing for 48 s
    assert clock.at(8000) == pytest.approx(100.5)
    assert clock.at(24000) == pytest.approx(149.5)


def test_beyond_what_it_keeps_it_counts_at_the_pipelines_rate() -> None:
    clock = WallClock(max_anchors=2)
    for i in range(1, 5):
        clock.received(16000, at=100.0 + i)
    assert clock.at(0) == pytest.approx(100.0)  # before the oldest anchor kept (sample 48000)
    assert clock.at(64000 + 16000) == pytest.approx(105.0)  # not received yet


def test_a_clock_taking_over_starts_where_the_checkpoint_was() -> None:
    clock = WallClock(first_sample=32000)
    clock.received(1600, at=200.1)
    assert clock.at(32000) == pytest.approx(200.0)
    assert clock.samples == 33600
    with pytest.raises(ValueError):
        WallClock(max_anchors=0)
