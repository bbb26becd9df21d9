"""What transcribing returns: typed results with times in seconds."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class WordTiming:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class SegmentStats:
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


@dataclass(frozen=True, slots=True)
class Transcription:
    """Times in seconds from the start of the transcribed audio."""

    text: str
    start: float
    end: float
    language: str
    language_probability: float
    words: tuple[WordTiming, ...]
    dropped_segments: int
    out_of_language: bool = False
    """An English-only model dropped everything it heard as a language it does not know."""

    def shifted(self, seconds: float) -> Transcription:
        """The same result with every time moved by ``seconds`` (never below zero)."""

        def move(t: float) -> float:
            return max(0.0, t + seconds)

        return replace(
            self,
            start=move(self.start),
            end=move(self.end),
            words=tuple(replace(w, start=move(w.start), end=move(w.end)) for w in self.words),
        )
