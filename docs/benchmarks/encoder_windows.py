"""Whisper's encoder time by window length, CTranslate2 on this machine (JSON out).

    .venv/bin/python docs/benchmarks/encoder_windows.py [--threads 1] [--repeats 10]

The pipeline pads every window to 30 s; a partial may encode a shorter one
(STREAMSCRIBE_PARTIAL_WINDOW_FLOOR_S). Times are medians, compared within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import ctranslate2
import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

from transcriber.model import resolve_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    model = ctranslate2.models.Whisper(
        resolve_model(args.model), device="cpu", compute_type="int8", intra_threads=args.threads
    )
    noise = np.random.default_rng(0).standard_normal(16000 * 30).astype(np.float32) * 0.01
    features = FeatureExtractor()(noise)[:, :3000]
    seconds = {}
    for window_s in (30, 20, 15, 10, 5):
        frames = np.ascontiguousarray(features[None, :, : window_s * 100])
        view = ctranslate2.StorageView.from_array(frames)
        model.encode(view)  # warm
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            model.encode(view)
            times.append(time.perf_counter() - started)
        seconds[str(window_s)] = round(statistics.median(times), 4)
    full = seconds["30"]
    print(
        json.dumps(
            {
                "model": args.model,
                "threads": args.threads,
                "encoder_seconds_by_window_s": seconds,
                "ratio_to_full_window": {k: round(v / full, 3) for k, v in seconds.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
