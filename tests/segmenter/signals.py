"""Synthetic signals for the segmenter's unit tests: loud frames are speech."""

from __future__ import annotations

import numpy as np

from segmenter.core import SegmenterEvent, UtteranceSegmenter
from segmenter.options import SegmenterOptions

FRAME = 480  # 30 ms at 16 kHz


class LoudIsSpeech:
    def is_speech(self, frame: bytes) -> bool:
        return int(np.abs(np.frombuffer(frame, "<i2")).max(initial=0)) > 1000


def speech(ms: int, amplitude: int = 8000) -> bytes:
    n = 16 * ms
    t = np.arange(n) / 16000
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(32 * ms)


def quiet_speech(ms: int) -> bytes:
    return speech(ms, amplitude=1500)


OPTIONS = SegmenterOptions(
    frame_ms=30,
    pre_speech_pad_ms=300,
    onset_window_ms=150,
    hangover_ms=450,
    long_utterance_s=8.0,
    long_hangover_ms=300,
    speculate_after_ms=150,
    min_speech_ms=150,
    max_utterance_s=15.0,
    partial_interval_ms=600,
    min_partial_ms=500,
)


def run(pcm: bytes, options: SegmenterOptions = OPTIONS, chunk: int = 1234) -> list[SegmenterEvent]:
    seg = UtteranceSegmenter(options, LoudIsSpeech())
    events: list[SegmenterEvent] = []
    for i in range(0, len(pcm), chunk):
        events += seg.feed(pcm[i : i + chunk])
    return events + seg.flush()
