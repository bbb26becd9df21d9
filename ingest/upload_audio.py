"""An uploaded recording: decoded by PyAV (any container and codec FFmpeg reads) to the
pipeline's 16 kHz mono PCM a piece at a time, and cut into windows of at most Whisper's 30 s
at pauses as it is decoded, so a node holds at most one window of any upload however long
the recording (a few MB of a compressed codec can hold hours)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import av
import webrtcvad

from shared.audio import PIPELINE_SAMPLE_RATE
from shared.errors import StreamscribeError

FRAME_MS = 30
FRAME_SAMPLES = PIPELINE_SAMPLE_RATE * FRAME_MS // 1000


class UndecodableUpload(StreamscribeError, ValueError):
    """The upload is not audio FFmpeg can read, or holds no audio."""


class UploadTooLong(UndecodableUpload):
    """The recording runs longer than a node accepts."""


def too_long(seconds: float, max_duration_s: float) -> UploadTooLong:
    """In OpenAI's words for the same refusal."""
    return UploadTooLong(
        f"audio duration {seconds:g} seconds is longer than {max_duration_s:g} seconds which is "
        "the maximum for this model"
    )


def decoded_pcm(file: BinaryIO, *, max_duration_s: float) -> Iterator[bytes]:
    """The first audio stream as 16 kHz mono s16le, a decoded frame at a time. A recording
    whose container declares more than ``max_duration_s`` is refused before any of it is
    decoded, and one that turns out longer as it is decoded (a container can leave its
    duration out, or lie) as soon as it passes the limit."""
    limit = int(max_duration_s * PIPELINE_SAMPLE_RATE)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=PIPELINE_SAMPLE_RATE)
    samples = 0
    try:
        with av.open(file, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise UndecodableUpload("the file holds no audio stream")
            declared = container.duration  # in AV_TIME_BASE units (microseconds), or None
            if declared is not None and declared / av.time_base > max_duration_s:
                raise too_long(round(declared / av.time_base, 3), max_duration_s)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    samples += out.samples
                    yield out.to_ndarray().tobytes()
                if samples > limit:
                    raise too_long(samples / PIPELINE_SAMPLE_RATE, max_duration_s)
            for out in resampler.resample(None):
                samples += out.samples
                yield out.to_ndarray().tobytes()
    except av.FFmpegError as exc:
        raise UndecodableUpload(f"the file could not be decoded as audio: {exc}") from None
    if samples > limit:
        raise too_long(samples / PIPELINE_SAMPLE_RATE, max_duration_s)
    if not samples:
        raise UndecodableUpload("the file holds no audio")


@dataclass(frozen=True, slots=True)
class Window:
    """Samples ``start``..``end`` of the recording; ``speech``: the VAD heard some."""

    start: int
    end: int
    speech: bool


@dataclass(frozen=True, slots=True)
class CutWindow:
    window: Window
    pcm: bytes
    """The window's samples (s16le)."""


class WindowCutter:
    """Cuts PCM fed in pieces into windows, each at most ``max_window_s``: in the middle of
    the longest pause after ``min_window_s`` (the end of the recording if it comes first), at
    ``max_window_s`` where there is none. A window with no speech is marked, so it need not
    be decoded (Whisper invents text over silence). Holds at most one window and a VAD frame
    of audio: a window is cut as soon as more than ``max_window_s`` follows its start."""

    def __init__(
        self, *, max_window_s: float = 30.0, min_window_s: float = 10.0, vad_mode: int = 2
    ) -> None:
        self._vad = webrtcvad.Vad(vad_mode)
        self._max_frames = max(1, int(max_window_s * 1000 / FRAME_MS))
        self._min_frames = min(self._max_frames, int(min_window_s * 1000 / FRAME_MS))
        self._held = bytearray()
        """Samples from the start of the next window on."""
        self._voiced: list[bool] = []
        """The VAD's verdict on each whole frame of ``_held``."""
        self._start = 0
        """The next window's first sample in the recording."""

    def feed(self, pcm: bytes) -> list[CutWindow]:
        self._held += pcm
        cut: list[CutWindow] = []
        while True:
            for frame in range(len(self._voiced), len(self._held) // (2 * FRAME_SAMPLES)):
                piece = self._held[frame * 2 * FRAME_SAMPLES : (frame + 1) * 2 * FRAME_SAMPLES]
                self._voiced.append(self._vad.is_speech(bytes(piece), PIPELINE_SAMPLE_RATE))
            if len(self._voiced) <= self._max_frames:
                return cut
            frames = _pause_cut(self._voiced, self._min_frames, self._max_frames)
            cut.append(self._take(frames * FRAME_SAMPLES, any(self._voiced[:frames])))
            del self._voiced[:frames]

    def finish(self) -> list[CutWindow]:
        """The last window: whatever is held (nothing for an empty recording)."""
        if not self._held:
            return []
        return [self._take(len(self._held) // 2, any(self._voiced))]

    def _take(self, samples: int, speech: bool) -> CutWindow:
        window = Window(self._start, self._start + samples, speech)
        pcm = bytes(self._held[: samples * 2])
        del self._held[: samples * 2]
        self._start += samples
        return CutWindow(window, pcm)


def cut_windows(
    pcm: bytes, *, max_window_s: float = 30.0, min_window_s: float = 10.0, vad_mode: int = 2
) -> list[Window]:
    """The windows of a whole recording at once (:class:`WindowCutter`)."""
    cutter = WindowCutter(max_window_s=max_window_s, min_window_s=min_window_s, vad_mode=vad_mode)
    return [c.window for c in (*cutter.feed(pcm), *cutter.finish())]


def upload_windows(
    file: BinaryIO, *, max_duration_s: float, max_window_s: float = 30.0
) -> Generator[CutWindow, None, None]:
    """An upload's windows as it is decoded (:func:`decoded_pcm`, :class:`WindowCutter`)."""
    cutter = WindowCutter(max_window_s=max_window_s)
    for pcm in decoded_pcm(file, max_duration_s=max_duration_s):
        yield from cutter.feed(pcm)
    yield from cutter.finish()


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
