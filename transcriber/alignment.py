"""Word timings for a decode made without them, by one alignment over the first window.

faster-whisper, asked for word timestamps, seeks again from the last word's end after each
window; on a window cut short (:mod:`transcriber.windows`) the sliver of trailing silence
left after that seek comes back as invented text ("Thank you for watching ...", "Okay."),
and words at the seek are lost ("the extenuating circumstances" came back as "the awaiting
circumstances"). So a final on a short window is decoded without word timestamps, and its
words are then aligned at once, on the first window's encoder output (the whole utterance,
which always fits one window), with faster-whisper's own alignment and punctuation rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transcriber.results import WordTiming, timed_words

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.\u3002,\uff0c!\uff01?\uff1f:\uff1a\u201d)]}\u3001"
"""faster-whisper's defaults for ``transcribe``."""


def aligned_words(
    model: Any,
    segments: Sequence[Any],
    encoder_output: Any,
    content_frames: int,
    language: str,
) -> list[tuple[WordTiming, ...]]:
    """Per segment of ``segments`` (faster-whisper ``Segment``s of one decode, times from the
    start of the audio), its words; ``encoder_output``: the encoder's output for the window
    that starts at the audio's first frame and holds all of its ``content_frames``."""
    from faster_whisper.tokenizer import Tokenizer

    if not segments:
        return []
    tokenizer = Tokenizer(
        model.hf_tokenizer,
        model.model.is_multilingual,
        task="transcribe",
        language=language,
    )
    group = [
        {"seek": 0, "start": s.start, "end": s.end, "tokens": list(s.tokens), "words": []}
        for s in segments
    ]
    model.add_word_timestamps(
        [group],
        tokenizer,
        encoder_output,
        content_frames,
        PREPEND_PUNCTUATIONS,
        APPEND_PUNCTUATIONS,
        last_speech_timestamp=0.0,
    )
    return [
        timed_words((w["word"], w["start"], w["end"], w["probability"]) for w in sub["words"])
        for sub in group
    ]
