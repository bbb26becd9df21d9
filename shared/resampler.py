"""A streaming resampler that holds back milliseconds, not tens of them: a polyphase
Kaiser-windowed sinc filter for rational rate changes, no I/O.

libsoxr's stream resampler works in blocks: at high quality it holds back 21 ms of a 24 or
48 kHz stream on average (up to 36 ms), and 64 ms of an 8 kHz one (up to 115 ms), whatever
the chunk size. Live audio is judged by when its last samples reach the segmenter, so that
hold-back is added to every final and turn of a client that does not send 16 kHz. This filter
emits every output sample as soon as the input it needs has come: it holds back only half its
length (2.5 ms from 24 or 48 kHz, 5 ms from 8 kHz), and output sample ``n`` is the input at
time ``n / out_rate`` (the filter's delay is compensated, as soxr does).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_GEMV_PHASES = 16
"""Up to this many phases (8, 12, 24, 32, 48 kHz), each phase is one matrix-vector product."""
_BLOCK = 2048
"""Outputs computed at once: their windows are gathered, ``_BLOCK`` x taps floats."""
DEFAULT_ATTENUATION_DB = 80.0
DEFAULT_PASSBAND = 0.875
"""Where the transition band begins, as a fraction of the lower rate's Nyquist frequency; the
stopband begins at that Nyquist frequency, so nothing above it folds back below it."""


def rate_ratio(in_rate: int, out_rate: int) -> tuple[int, int]:
    """``(up, down)``: the output is the input upsampled by ``up`` and decimated by ``down``."""
    common = math.gcd(in_rate, out_rate)
    return out_rate // common, in_rate // common


def polyphase_filter(
    in_rate: int,
    out_rate: int,
    *,
    attenuation_db: float = DEFAULT_ATTENUATION_DB,
    passband: float = DEFAULT_PASSBAND,
) -> tuple[np.ndarray, int]:
    """The filter as a ``(up, taps)`` table (row ``p``: the taps of phase ``p``, newest input
    last) and its delay in samples at the upsampled rate."""
    up, _ = rate_ratio(in_rate, out_rate)
    upsampled_rate = in_rate * up
    nyquist = min(in_rate, out_rate) / 2
    transition_hz = nyquist * (1 - passband)
    cutoff_hz = nyquist - transition_hz / 2
    width = 2 * math.pi * transition_hz / upsampled_rate
    length = math.ceil((attenuation_db - 7.95) / (2.285 * width)) + 1
    length += 1 - length % 2  # odd: a whole number of samples of delay
    beta = 0.1102 * (attenuation_db - 8.7)
    delay = (length - 1) // 2
    n = np.arange(length) - delay
    ratio = 2 * cutoff_hz / upsampled_rate
    taps = ratio * np.sinc(ratio * n) * np.kaiser(length, beta) * up
    per_phase = math.ceil(length / up)
    padded = np.zeros(per_phase * up)
    padded[:length] = taps
    table = padded.reshape(per_phase, up).T  # table[p, m] = taps[p + m * up]
    return np.ascontiguousarray(table[:, ::-1], dtype=np.float32), delay


class StreamResampler:
    """Resamples a mono float32 stream chunk by chunk, with the interface of
    ``soxr.ResampleStream.resample_chunk``.

    ``max_phases`` bounds the filter table (``up`` rows): a ratio that needs more (an odd rate
    such as 47999 Hz) is refused with ``ValueError``, for the caller to resample otherwise.
    """

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        *,
        max_phases: int = 1024,
        attenuation_db: float = DEFAULT_ATTENUATION_DB,
        passband: float = DEFAULT_PASSBAND,
    ) -> None:
        up, down = rate_ratio(in_rate, out_rate)
        if up > max_phases:
            raise ValueError(
                f"{in_rate} -> {out_rate} Hz needs {up} filter phases, over {max_phases}"
            )
        self._up, self._down = up, down
        self._upsampled_rate = in_rate * up
        self._table, self._delay = polyphase_filter(
            in_rate, out_rate, attenuation_db=attenuation_db, passband=passband
        )
        self._taps = self._table.shape[1]
        self._buffer = np.zeros(self._taps - 1, np.float32)
        self._buffer_start = -(self._taps - 1)
        """The input index of ``_buffer[0]`` (before the stream: silence)."""
        self._seen = 0
        self._emitted = 0
        self._ended = False

    @property
    def delay_s(self) -> float:
        """How far behind its input the output is: half the filter's length."""
        return self._delay / self._upsampled_rate

    def resample_chunk(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._ended:
            raise ValueError("the stream has ended")
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._seen += chunk.size
        end = self._ready()
        if last:
            self._ended = True
            end = -(-self._seen * self._up // self._down)  # ceil: every output the input spans
            newest_needed = ((end - 1) * self._down + self._delay) // self._up if end else -1
            shortfall = newest_needed - (self._buffer_start + self._buffer.size - 1)
            if shortfall > 0:
                self._buffer = np.concatenate([self._buffer, np.zeros(shortfall, np.float32)])
        out = self._outputs(self._emitted, end)
        self._emitted = end
        self._trim()
        return out

    def _ready(self) -> int:
        """One past the last output whose input has all come."""
        newest = self._seen * self._up - 1 - self._delay
        return max(self._emitted, newest // self._down + 1)

    def _outputs(self, begin: int, end: int) -> np.ndarray:
        if end - begin > _BLOCK:  # bounds the gathered windows of one large chunk
            blocks = range(begin, end, _BLOCK)
            return np.concatenate([self._outputs(b, min(b + _BLOCK, end)) for b in blocks])
        if end <= begin:
            return np.zeros(0, np.float32)
        positions = np.arange(begin, end, dtype=np.int64) * self._down + self._delay
        newest = positions // self._up
        phases = positions % self._up
        windows = sliding_window_view(self._buffer, self._taps)
        starts = newest - (self._taps - 1) - self._buffer_start
        if self._up > _GEMV_PHASES:
            out: np.ndarray = np.einsum("ij,ij->i", windows[starts], self._table[phases])
            return out.astype(np.float32, copy=False)
        # outputs n and n + up share a phase and their windows are ``down`` inputs apart: a
        # matrix-vector product per phase, on those windows copied together
        count = end - begin
        out = np.empty(count, np.float32)
        for first in range(min(self._up, count)):
            rows = windows[starts[first] :: self._down][: len(range(first, count, self._up))]
            out[first :: self._up] = np.ascontiguousarray(rows) @ self._table[phases[first]]
        return out

    def _trim(self) -> None:
        position = self._emitted * self._down + self._delay
        first_needed = position // self._up - (self._taps - 1)
        drop = min(max(0, first_needed - self._buffer_start), self._buffer.size)
        if drop:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
