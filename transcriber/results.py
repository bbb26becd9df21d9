"""What transcribing returns: typed results with times in seconds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class WordTiming:
    word: str
    start: float
    end: float
    probability: float


def timed_words(found: Iterable[tuple[Any, Any, Any, Any]]) -> tuple[WordTiming, ...]:
    """faster-whisper's words (word, start, end, probability), stripped, none left blank: its
    alignment can end on an empty word (seen after a temperature fallback on Welsh through
    tiny.en: "Passat" then "" at 0.97), which would lift the language guard's mean word
    probability over its threshold and reach clients as a word with no text."""
    words = []
    for word, start, end, probability in found:
        text = str(word).strip()
        if text:
            words.append(WordTiming(text, float(start), float(end), float(probability)))
    return tuple(words)


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
