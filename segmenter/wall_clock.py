"""When each sample of a session's stream reached the server, by the wall clock.

A speaker's ``start``/``end`` count seconds of that speaker's own stream, so the members of a
room who joined at different times cannot be put on one timeline by them. Ingest stamps every
audio entry with the wall time it arrived; this keeps the recent stamps and answers, for a
sample, the wall time it arrived (Unix seconds): the last sample of an entry arrived with the
entry, the ones before it that much earlier at the pipeline's rate.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

from shared.audio import PIPELINE_SAMPLE_RATE

ANCHORS_KEPT = 4096
"""Entries remembered (at 20-100 ms of audio each, 80-400 s: longer than any utterance or turn
waits for its job)."""


class WallClock:
    def __init__(self, *, first_sample: int = 0, max_anchors: int = ANCHORS_KEPT) -> None:
        """``first_sample``: the stream's samples before the first entry this clock sees (a
        segmenter taking over a session starts from its checkpoint)."""
        if max_anchors < 1:
            raise ValueError("at least one anchor must be kept")
        self._ends: deque[int] = deque(maxlen=max_anchors)
        """The stream's sample count after each entry, increasing."""
        self._times: deque[float] = deque(maxlen=max_anchors)
        self._samples = first_sample

    @property
    def samples(self) -> int:
        return self._samples

    def received(self, samples: int, at: float) -> None:
        """An entry of ``samples`` samples arrived at ``at`` (wall clock)."""
        if samples <= 0:
            return
        self._samples += samples
        self._ends.append(self._samples)
        self._times.append(at)

    def at(self, sample: int) -> float:
        """The wall time sample ``sample`` arrived (0.0 before any audio). A sample older than
        every anchor kept is placed before the oldest at the pipeline's rate; one not yet
        received, after the newest."""
        if not self._ends:
            return 0.0
        i = bisect_left(self._ends, sample)
        if i == len(self._ends):
            i -= 1
        return self._times[i] - (self._ends[i] - sample) / PIPELINE_SAMPLE_RATE
