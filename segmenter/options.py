"""Options of the pure segmenter core."""

from __future__ import annotations

from dataclasses import dataclass

from shared.audio import PIPELINE_SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class SegmenterOptions:
    vad_aggressiveness: int = 3
    """webrtcvad mode 0 (least) to 3 (most aggressive at calling audio non-speech)."""
    frame_ms: int = 30
    """VAD frame length: 10, 20 or 30 ms."""
    pre_speech_pad_ms: int = 300
    """Audio kept before the detected onset so first syllables are not clipped."""
    onset_window_ms: int = 150
    onset_ratio: float = 0.6
    """Speech starts when this share of the frames in the onset window are speech."""
    hangover_ms: int = 300
    """Non-speech needed after speech before the utterance ends."""
    long_utterance_s: float = 8.0
    long_hangover_ms: int = 240
    """Once an utterance is ``long_utterance_s`` long, a shorter pause ends it: phrase
    boundaries, rather than a cut at ``max_utterance_s``, and a sooner final."""
    speculate_after_ms: int = 150
    """Non-speech after which the utterance so far is transcribed speculatively (0: never)."""
    min_speech_ms: int = 150
    """Utterances with less speech than this are dropped as clicks."""
    max_utterance_s: float = 15.0
    """Longer utterances are cut at the quietest frame of the last ``cut_search_s``."""
    cut_search_s: float = 3.0
    partial_interval_ms: int = 600
    """New speech between partial jobs (0: no partials)."""
    min_partial_ms: int = 500
    first_partial_ms: int = 300
    """Speech before an utterance's first partial (later ones follow ``partial_interval_ms``)."""
    turn_gap_ms: int = 1000
    """A pause this long (from the end of speech) ends the speaker's turn."""
    max_turn_s: float = 28.0
    """A turn ends before an utterance that starts more than ``max_turn_s - max_utterance_s``
    into it, so a turn never passes one Whisper window."""
    turn_pad_ms: int = 600
    """Audio kept after a turn's last utterance (within the pause that ended it)."""

    def __post_init__(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise ValueError("frame_ms must be 10, 20 or 30")
        if not 0 <= self.vad_aggressiveness <= 3:
            raise ValueError("vad_aggressiveness must be 0-3")
        if not 0 < self.onset_ratio <= 1:
            raise ValueError("onset_ratio must be in (0, 1]")
        if self.hangover_ms < self.frame_ms:
            raise ValueError("hangover_ms must be at least one frame")
        if not self.frame_ms <= self.long_hangover_ms <= self.hangover_ms:
            raise ValueError("long_hangover_ms must be between frame_ms and hangover_ms")
        if self.speculate_after_ms >= self.long_hangover_ms:
            raise ValueError("speculate_after_ms must be shorter than long_hangover_ms")
        if self.turn_gap_ms < self.hangover_ms:
            raise ValueError("turn_gap_ms must be at least hangover_ms")
        if self.max_turn_s <= self.max_utterance_s:
            raise ValueError("max_turn_s must be longer than max_utterance_s")
        if self.cut_search_s >= self.max_utterance_s:
            raise ValueError("cut_search_s must be shorter than max_utterance_s")

    @property
    def frame_samples(self) -> int:
        return PIPELINE_SAMPLE_RATE * self.frame_ms // 1000

    def frames(self, ms: float) -> int:
        """How many whole frames cover ``ms`` milliseconds (at least one)."""
        return max(1, round(ms / self.frame_ms))
