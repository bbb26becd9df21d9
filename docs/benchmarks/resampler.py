"""The live resampler against libsoxr's stream resampler, rate by rate (JSON out).

    .venv/bin/python docs/benchmarks/resampler.py [--chunk-ms 50] [--seconds 10]

For each client rate, both stream the same noise in ``--chunk-ms`` chunks to 16 kHz. Reports
how far the output is behind the input after each chunk (mean and max, in ms: what every
final and turn of such a client waits for), the CPU time per chunk, and the in-band agreement
of each with libsoxr's offline very-high-quality resampling (SNR in dB below 85% of the
lower Nyquist frequency).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Protocol

import numpy as np
import soxr

from shared.resampler import StreamResampler

RATES = (8000, 11025, 22050, 24000, 44100, 48000)


class _Streaming(Protocol):
    def resample_chunk(self, samples: np.ndarray, last: bool = False) -> np.ndarray: ...


def _measure(resampler: _Streaming, samples: np.ndarray, rate: int, chunk: int) -> dict[str, Any]:
    behind: list[float] = []
    parts: list[np.ndarray] = []
    spent = 0.0
    for begin in range(0, samples.size - chunk + 1, chunk):
        started = time.process_time()
        parts.append(resampler.resample_chunk(samples[begin : begin + chunk]))
        spent += time.process_time() - started
        emitted = sum(p.size for p in parts)
        behind.append((begin + chunk) * 16000 / rate - emitted)
    parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    steady = np.array(behind[5:]) / 16
    return {
        "behind_mean_ms": round(float(steady.mean()), 2),
        "behind_max_ms": round(float(steady.max()), 2),
        "cpu_us_per_chunk": round(spent / len(behind) * 1e6, 1),
        "output": np.concatenate(parts),
    }


def _in_band_snr_db(ours: np.ndarray, reference: np.ndarray, band_hz: float) -> float:
    n = min(ours.size, reference.size)

    def low(x: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft(x[:n])
        spectrum[np.fft.rfftfreq(n, 1 / 16000) > band_hz] = 0
        return np.fft.irfft(spectrum, n)

    error = low(ours) - low(reference)
    return round(float(10 * np.log10(np.sum(low(reference) ** 2) / np.sum(error**2))), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-ms", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    report: dict[str, Any] = {"chunk_ms": args.chunk_ms, "seconds": args.seconds, "rates": {}}
    for rate in RATES:
        samples = (
            np.random.default_rng(rate).standard_normal(int(rate * args.seconds)) * 0.1
        ).astype(np.float32)
        chunk = rate * args.chunk_ms // 1000
        reference = soxr.resample(samples, rate, 16000, "VHQ")
        band = min(rate, 16000) / 2 * 0.85
        row: dict[str, Any] = {}
        for name, resampler in (
            ("streamscribe", StreamResampler(rate, 16000)),
            (
                "libsoxr_hq_stream",
                soxr.ResampleStream(rate, 16000, 1, dtype="float32", quality="HQ"),
            ),
        ):
            figures = _measure(resampler, samples, rate, chunk)
            figures["in_band_snr_vs_soxr_vhq_db"] = _in_band_snr_db(
                figures.pop("output"), reference, band
            )
            row[name] = figures
        row["behind_mean_ratio"] = round(
            row["streamscribe"]["behind_mean_ms"] / row["libsoxr_hq_stream"]["behind_mean_ms"], 3
        )
        report["rates"][str(rate)] = row
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
