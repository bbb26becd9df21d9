"""Pure helpers for batched transcription: packing utterances and sorting results back.

Several utterances are laid end to end in one array, each behind its own lead silence, and
handed to faster-whisper's batched pipeline as clips; every clip becomes one batch item.
Segments come back tagged with their clip's start (``seek``, in 10 ms frames), which is how
they are given back to their utterance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from shared.audio import PIPELINE_SAMPLE_RATE, s16_to_float
from transcriber.results import SegmentStats, WordTiming

FRAMES_PER_SECOND = 100
"""Whisper's feature frames per second: the unit of a segment's ``seek``."""


@dataclass(frozen=True, slots=True)
class SegmentOutcome:
    """One decoded segment, times in seconds of the packed audio."""

    seek: int
    text: str
    start: float
    end: float
    stats: SegmentStats
    words: tuple[WordTiming, ...]


@dataclass(frozen=True, slots=True)
class PackedBatch:
    audio: np.ndarray
    clips: list[dict[str, float]]
    """Each utterance's span in seconds (``start``, ``end``), its lead silence included."""
    offsets: tuple[float, ...]
    """Where each utterance's clip starts, in seconds."""

    def assign(self, segments: Iterable[SegmentOutcome]) -> list[SegmentOutcome | None]:
        """Each utterance's segment (several are merged), or None where nothing was decoded."""
        found: list[list[SegmentOutcome]] = [[] for _ in self.offsets]
        for segment in segments:
            found[self.index_of(segment.seek)].append(segment)
        return [_merge(parts) if parts else None for parts in found]

    def index_of(self, seek: int) -> int:
        """The clip that starts nearest ``seek`` (frame rounding may move it by one)."""
        at = seek / FRAMES_PER_SECOND
        return min(range(len(self.offsets)), key=lambda i: abs(self.offsets[i] - at))


def pack_utterances(pcms: Sequence[bytes], *, lead_s: float) -> PackedBatch:
    """Lays utterances end to end, each after ``lead_s`` of silence."""
    if not pcms:
        raise ValueError("nothing to pack")
    lead = np.zeros(int(lead_s * PIPELINE_SAMPLE_RATE), np.float32)
    pieces: list[np.ndarray] = []
    clips: list[dict[str, float]] = []
    offsets: list[float] = []
    position = 0
    for pcm in pcms:
        samples = s16_to_float(pcm)
        length = len(lead) + len(samples)
        offsets.append(position / PIPELINE_SAMPLE_RATE)
        clips.append(
            {
                "start": position / PIPELINE_SAMPLE_RATE,
                "end": (position + length) / PIPELINE_SAMPLE_RATE,
            }
        )
        pieces.extend((lead, samples))
        position += length
    return PackedBatch(np.concatenate(pieces), clips, tuple(offsets))


def _merge(parts: list[SegmentOutcome]) -> SegmentOutcome:
    if len(parts) == 1:
        return parts[0]
    return SegmentOutcome(
        seek=parts[0].seek,
        text=" ".join(p.text.strip() for p in parts if p.text.strip()),
        start=parts[0].start,
        end=parts[-1].end,
        stats=SegmentStats(
            no_speech_prob=parts[0].stats.no_speech_prob,
            avg_logprob=min(p.stats.avg_logprob for p in parts),
            compression_ratio=max(p.stats.compression_ratio for p in parts),
        ),
        words=tuple(w for p in parts for w in p.words),
    )
