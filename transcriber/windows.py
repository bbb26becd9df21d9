"""Shorter encoder windows: Whisper's encoder over the audio, not over 30 s of padding.

faster-whisper pads every window's log-mel features to 3000 frames (30 s) with zeros, and the
encoder's cost grows with the frames it is given (tiny.en int8, one thread, on this box:
0.41 s for 30 s, 0.045 s for 10 s). CTranslate2 accepts shorter inputs, so the padding after
the audio can be cut before encoding, down to a floor and with a margin of padding kept.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

FULL_WINDOW_FRAMES = 3000
FRAMES_PER_SECOND = 100
FULL_WINDOW_SAMPLES = 30 * 16000
MAX_TOKENS_PER_S = 30
SPARE_TOKENS = 16
"""A window's decoding may write at most ``MAX_TOKENS_PER_S`` (the default of the setting)
tokens per second of its audio (not its padding), plus ``SPARE_TOKENS``: text cannot outrun
the speech it transcribes. On
../shared/audio-dev's tuning half (offline tiny.en, 188 segments) the densest segment had 7.1
tokens a second (p99 6.1, timestamps included); byte-level BPE is denser for other scripts,
so the bound leaves four times that. What it stops is a decoding of almost nothing: a final
whose first pass ended 20 ms before its audio was decoded once more over that remainder (a
10 s window of padding), looped, fell back to sampling and took 1.1 s of a 1.3 s final
(tests/data's LJ Speech recording, the 4.38-14.96 s utterance, every run)."""


class Scope(enum.Enum):
    """What a final decode's audio is; each has its own encoder window."""

    UTTERANCE = "utterance"
    """A fast final: one utterance, at most ``max_utterance_s``."""
    TURN = "turn"
    RECORDING = "recording"
    """A whole file decoded offline, the ceiling streaming is measured against: always
    Whisper's full window, as a user running faster-whisper would get."""


@dataclass(frozen=True, slots=True)
class WindowOptions:
    """``floor_s``: the shortest window encoded (30 s: always the full window, as Whisper was
    trained); ``margin_s``: padding kept after the last frame of audio."""

    floor_s: float = 30.0
    margin_s: float = 1.0
    step_s: float = 1.0
    """Windows are whole multiples of this, so the encoder sees few distinct shapes."""

    def __post_init__(self) -> None:
        if not 1.0 <= self.floor_s <= 30.0:
            raise ValueError("the encoder window floor must be between 1 and 30 s")
        if not 0.0 <= self.margin_s <= 30.0 or not 0.1 <= self.step_s <= 30.0:
            raise ValueError("the encoder window margin and step must be within 30 s")

    @property
    def trims(self) -> bool:
        return self.floor_s < 30.0


def content_frames(features: np.ndarray) -> int:
    """Frames up to the last one that is not padding (padding is exactly zero in every
    mel bin; a frame of real audio, even digital silence, never is)."""
    columns = np.any(features != 0, axis=tuple(range(features.ndim - 1)))
    used = np.flatnonzero(columns)
    return int(used[-1]) + 1 if used.size else 0


def window_frames(content: int, options: WindowOptions) -> int:
    """The frames to encode for ``content`` frames of audio."""
    step = round(options.step_s * FRAMES_PER_SECOND)
    wanted = content + round(options.margin_s * FRAMES_PER_SECOND)
    wanted = max(wanted, round(options.floor_s * FRAMES_PER_SECOND))
    return min(FULL_WINDOW_FRAMES, -(-wanted // step) * step)


def trimmed(features: np.ndarray, options: WindowOptions, content: int | None = None) -> np.ndarray:
    """``features`` ((n_mels, frames) or (batch, n_mels, frames)) cut to their window;
    ``content``: their :func:`content_frames`, where the caller has it already."""
    if not options.trims or features.shape[-1] < FULL_WINDOW_FRAMES:
        return features
    content = content_frames(features) if content is None else content
    frames = window_frames(content, options)
    return np.ascontiguousarray(features[..., :frames])


def max_new_tokens(audio_frames: int, per_s: int = MAX_TOKENS_PER_S) -> int:
    """The most tokens a window with ``audio_frames`` frames of audio may be decoded into
    (``per_s`` 0: no bound)."""
    if per_s <= 0:
        return 1 << 30
    return -(-audio_frames * per_s // FRAMES_PER_SECOND) + SPARE_TOKENS


@functools.cache
def whisper_model_class() -> Any:
    """faster-whisper's ``WhisperModel``, encoding each window as its ``window`` says."""
    from faster_whisper import WhisperModel

    class TrimmedWhisperModel(WhisperModel):  # type: ignore[misc]
        window = WindowOptions()
        """Set by the owner before a call (one model per worker, used by one thread)."""
        first_encoding: Any = None
        """The encoder output of the first window since the owner last cleared it."""

        window_audio_frames = FULL_WINDOW_FRAMES
        """The frames of audio (not padding) in the window encoded last."""
        max_tokens_per_s = MAX_TOKENS_PER_S
        """Set by the owner once (its options)."""

        def encode(self, features: np.ndarray) -> Any:
            self.window_audio_frames = content_frames(features)
            output = super().encode(trimmed(features, self.window, self.window_audio_frames))
            if self.first_encoding is None:
                self.first_encoding = output
            return output

        def generate_with_fallback(
            self, encoder_output: Any, prompt: list[int], tokenizer: Any, options: Any
        ) -> Any:
            bounded = dataclasses.replace(
                options,
                max_new_tokens=min(
                    options.max_new_tokens or self.max_length,
                    max_new_tokens(self.window_audio_frames, self.max_tokens_per_s),
                    self.max_length - len(prompt),
                ),
            )
            return super().generate_with_fallback(encoder_output, prompt, tokenizer, bounded)

    return TrimmedWhisperModel
