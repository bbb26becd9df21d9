"""``bench --paired``: the faces measured side by side, under one load.

Each recording is streamed through every face at the same moment (one group of streams per
recording), so whatever else the machine is doing weighs on every face alike. Run one after
another, the faces' latency tails at four streams on two cores moved by up to 0.9 s from run
to run, which hid a face's own cost (tens of milliseconds) in the machine's noise.

The paired figures: for the k-th turn of a recording, and for its k-th final, when it reached
each face's client, counted from that stream's first audio, minus the same for the first
face. Turn ends are not used: each face reports them its own way (v1 the last word's end,
OpenAI Realtime its VAD's ``speech_stopped``).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamscribe.benchmarks.metrics import ManifestEntry, run_each
from streamscribe.client import Audio, StreamRun
from streamscribe.statistics import percentile, rounded

Streamer = Callable[..., Awaitable[StreamRun]]


@dataclass(frozen=True, slots=True)
class PairedResult:
    """What one recording did through each face, streamed at once."""

    entry: ManifestEntry
    runs: Mapping[str, StreamRun]


async def stream_paired(
    streamers: Mapping[str, tuple[Streamer, str]],
    entries: Sequence[ManifestEntry],
    audio: Mapping[str, Audio],
    *,
    concurrency: int,
    speed: float,
    tail_silence_s: float,
) -> list[PairedResult]:
    """``concurrency`` streams in all: :func:`recordings_at_once` recordings at a time, each
    through every face (``face: (streamer, url)``) at once."""
    results: list[PairedResult] = []

    async def each(entry: ManifestEntry) -> None:
        runs = await asyncio.gather(
            *(
                stream(url, audio[entry.id], speed=speed, tail_silence_s=tail_silence_s)
                for stream, url in streamers.values()
            )
        )
        by_face = dict(zip(streamers, runs, strict=True))
        results.append(PairedResult(entry, by_face))
        closes = ", ".join(f"{face} {run.close_code}" for face, run in by_face.items())
        print(f"  {entry.id}: close {closes}", file=sys.stderr, flush=True)

    await run_each(entries, recordings_at_once(concurrency, len(streamers)), each)
    return results


def recordings_at_once(concurrency: int, faces: int) -> int:
    """How many recordings ``concurrency`` streams in all carry through ``faces`` faces."""
    return max(1, concurrency // faces)


def turn_arrivals(run: StreamRun) -> list[float]:
    """When each turn reached the client, in seconds from the stream's first audio."""
    return [t.at - run.started_at for t in run.turns]


def final_arrivals(run: StreamRun) -> list[float]:
    """When each final (an OpenAI Realtime delta) reached the client, from the first audio."""
    return [f.at - run.started_at for f in run.finals]


Arrivals = Callable[[StreamRun], list[float]]


def paired_delays(results: Sequence[PairedResult], base: str) -> dict[str, Any]:
    """Per face, its k-th turn's and k-th final's arrival minus ``base``'s, over the
    recordings that both cut into as many (the others are counted, not compared). A face
    that has no turns (Deepgram's protocol) gets no turn figures."""
    faces = [f for f in (results[0].runs if results else {}) if f != base]
    report: dict[str, Any] = {}
    for face in faces:
        # a face whose audio starts later loses ties for a busy transcriber, and a tie costs
        # a whole decode: the figures below are read against this offset (README)
        offsets = [r.runs[face].started_at - r.runs[base].started_at for r in results]
        figures: dict[str, Any] = {
            f"audio_start_vs_{base}_median_s": rounded(
                statistics.median(offsets) if offsets else None
            ),
        }
        figures |= _compared(results, face, base, arrivals=turn_arrivals, what="turn", tag="")
        figures |= _compared(
            results, face, base, arrivals=final_arrivals, what="final", tag="_by_finals"
        )
        report[face] = figures
    return report


def _compared(
    results: Sequence[PairedResult],
    face: str,
    base: str,
    *,
    arrivals: Arrivals,
    what: str,
    tag: str,
) -> dict[str, Any]:
    if not any(arrivals(r.runs[face]) for r in results):
        return {}
    delays: list[float] = []
    unmatched: list[str] = []
    for result in results:
        mine = arrivals(result.runs[face])
        theirs = arrivals(result.runs[base])
        if len(mine) != len(theirs):
            unmatched.append(f"{result.entry.id}: {len(mine)} {what}s, {base} {len(theirs)}")
            continue
        delays += [a - b for a, b in zip(mine, theirs, strict=True)]
    prefix = f"{what}_delay_vs_{base}"
    return {
        f"{prefix}_p5_s": rounded(percentile(delays, 5)),
        f"{prefix}_p50_s": rounded(percentile(delays, 50)),
        f"{prefix}_p95_s": rounded(percentile(delays, 95)),
        f"{prefix}_mean_s": rounded(statistics.fmean(delays) if delays else None),
        f"{what}s_compared": len(delays),
        f"recordings_compared{tag}": len(results) - len(unmatched),
        f"recordings_not_compared{tag}": unmatched,
    }
