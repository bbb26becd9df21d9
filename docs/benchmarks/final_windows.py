"""A fast final on Whisper's full window against one on a 10 s window (JSON out).

    .venv/bin/python docs/benchmarks/final_windows.py \
        --manifest ../shared/audio-dev/manifest.jsonl [--every 5] [--utterances 80]

Utterances are cut by the segmenter core from every ``--every``-th recording; each is
transcribed as its final is (beam 5, word times) on both windows, in one process, one after
the other. Reports seconds per final and how far the short window's aligned word times move
the final's start and end (the bench measures final latency from ``end``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from segmenter.core import UtteranceEnded
from segmenter.options import SegmenterOptions
from shared.settings import Settings
from streamscribe.benchmarks.metrics import load_manifest
from streamscribe.benchmarks.tuning import pcm_of, segment
from streamscribe.options import model_options
from transcriber.model import SpeechModel, Transcription


def _stats(values: list[float]) -> dict[str, float]:
    return {
        name: round(float(np.percentile(values, q)), 3)
        for name, q in (("p10", 10), ("median", 50), ("p90", 90))
    } | {"mean": round(float(np.mean(values)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--utterances", type=int, default=80)
    args = parser.parse_args()
    entries = load_manifest(args.manifest)[:: args.every]
    utterances = [
        event.pcm
        for entry in entries
        for event in segment(pcm_of(entry), SegmenterOptions())
        if isinstance(event, UtteranceEnded)
    ][: args.utterances]
    options = model_options(Settings())
    results: dict[float, list[Transcription]] = {}
    seconds: dict[str, float] = {}
    for floor in (30.0, 10.0):
        model = SpeechModel(replace(options, final_window_floor_s=floor))
        started = time.perf_counter()
        results[floor] = [model.transcribe(pcm, None, final=True) for pcm in utterances]
        seconds[f"{floor:g}"] = round((time.perf_counter() - started) / len(utterances), 3)
    both = list(zip(results[30.0], results[10.0], strict=True))
    pairs = [(a, b) for a, b in both if a.words and b.words]
    report = {
        "manifest": args.manifest,
        "utterances": len(utterances),
        "audio_s_mean": round(sum(len(p) for p in utterances) / 32000 / len(utterances), 2),
        "seconds_per_final_by_window_floor_s": seconds,
        "short_over_full_time": round(seconds["10"] / seconds["30"], 3),
        "end_shift_s": _stats([b.end - a.end for a, b in pairs]),
        "start_shift_s": _stats([b.start - a.start for a, b in pairs]),
        "same_text": sum(a.text == b.text for a, b in both),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
