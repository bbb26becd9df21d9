"""An uploaded recording: decoded by PyAV (any container and codec FFmpeg reads) to the
pipeline's 16 kHz mono PCM, and cut into windows of at most Whisper's 30 s at pauses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np
import webrtcvad

from shared.audio import PIPELINE_SAMPLE_RATE

FRAME_MS = 30
FRAME_SAMPLES = PIPELINE_SAMPLE_RATE * FRAME_MS // 1000


class UndecodableUpload(ValueError):
    """The upload is not audio FFmpeg can read, holds no audio, or runs too long."""


def decode_upload(file: BinaryIO, *, max_duration_s: float) -> bytes:
    """The first audio stream as 16 kHz mono s16le; at most ``max_duration_s`` of it (a small
    file of a compressed codec may hold hours)."""
    limit = int(max_duration_s * PIPELINE_SAMPLE_RATE)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=PIPELINE_SAMPLE_RATE)
    chunks: list[bytes] = []
    samples = 0
    try:
        with av.open(file, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise UndecodableUpload("the file holds no audio stream")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().tobytes())
                    samples += out.samples
                if samples > limit:
                    raise UndecodableUpload(
                        f"the recording is longer than the {max_duration_s:.0f} s allowed"
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().tobytes())
    except av.FFmpegError as exc:
        raise UndecodableUpload(f"the file could not be decoded as audio: {exc}") from None
    pcm = b"".join(chunks)
    if not pcm:
        raise UndecodableUpload("the file holds no audio")
    return pcm


@dataclass(frozen=True, slots=True)
class Window:
    """Samples ``start``..``end`` of the recording; ``speech``: the VAD heard some."""

    start: int
    end: int
    speech: bool


def cut_windows(
    pcm: bytes,
    *,
    max_window_s: float = 30.0,
    min_window_s: float = 10.0,
    vad_mode: int = 2,
) -> list[Window]:
    """Windows covering the recording, each at most ``max_window_s``: cut in the middle of
    the longest pause after ``min_window_s`` (the end of the recording if it comes first),
    at ``max_window_s`` where there is none. A window with no speech is marked, so it
    need not be decoded (Whisper invents text over silence)."""
    audio = np.frombuffer(pcm, dtype=np.int16)
    frames = len(audio) // FRAME_SAMPLES
    vad = webrtcvad.Vad(vad_mode)
    voiced = [
        vad.is_speech(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].tobytes(), 16000)
        for i in range(frames)
    ]
    max_frames = max(1, int(max_window_s * 1000 / FRAME_MS))
    min_frames = min(max_frames, int(min_window_s * 1000 / FRAME_MS))
    windows: list[Window] = []
    first = 0
    while first < frames:
        if frames - first <= max_frames:
            cut = frames
        else:
            cut = _pause_cut(voiced, first + min_frames, first + max_frames)
        windows.append(Window(first * FRAME_SAMPLES, cut * FRAME_SAMPLES, any(voiced[first:cut])))
        first = cut
    if windows:  # the samples after the last whole frame belong to the last window
        last = windows[-1]
        windows[-1] = Window(last.start, len(audio), last.speech)
    elif len(audio):
        windows.append(Window(0, len(audio), False))
    return windows


def _pause_cut(voiced: list[bool], low: int, high: int) -> int:
    """The middle of the longest run of unvoiced frames in ``low``..``high``, else ``high``."""
    best_length, best_cut = 0, high
    run_start: int | None = None
    for i in range(low, high + 1):
        unvoiced = i < high and not voiced[i]
        if unvoiced and run_start is None:
            run_start = i
        elif not unvoiced and run_start is not None:
            if i - run_start > best_length:
                best_length, best_cut = i - run_start, (run_start + i) // 2
            run_start = None
    return best_cut if best_length else high
