"""What the transcriber is configured with: the model and how it decodes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelOptions:
    model: str
    device: str
    compute_type: str
    cpu_threads: int
    beam_size: int
    partial_beam_size: int
    no_speech_threshold: float
    log_prob_threshold: float
    compression_ratio_threshold: float
    partial_window_floor_s: float = 10.0
    """Shortest encoder window for partials (30: always Whisper's full window)."""
    final_window_floor_s: float = 10.0
    """Shortest encoder window for fast finals."""
    turn_window_floor_s: float = 10.0
    """Shortest encoder window for turns and whole recordings."""
    encoder_window_margin_s: float = 1.0
    """Padding kept after the audio when the window is cut short."""
    max_tokens_per_s: int = 30
    """Tokens a window may be decoded into per second of its audio (:mod:`transcriber.windows`;
    0: Whisper's own 448 whatever the audio)."""

    @property
    def english_only(self) -> bool:
        return self.model.endswith(".en")

    @property
    def display_name(self) -> str:
        return self.model.rstrip("/").rsplit("/", 1)[-1]
