"""Settling a turn: its audio decoded as a whole, with the speaker's earlier text as prompt.

Guards besides the per-segment ones of :mod:`transcriber.model`: a prompt can pull Whisper
into echoing it or looping, so a turn whose decoding looks wrong with the prompt is decoded
again without it; text that still looks wrong is never used as the next turn's prompt.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shared.audio import s16_to_float
from transcriber.results import Transcription
from transcriber.windows import Scope

TURN_LEAD_S = 0.2
"""Silence put before a turn's audio (chosen on ../shared/audio-dev, see the README)."""
DOUBTFUL_WORD = 0.1
"""A last word below this probability is taken for the model running on, not speech."""
STOPS_SHORT_S = 2.5
"""A turn's last word ending this long before its audio does means the decoding stopped
early (the audio ends with at most the hangover and the turn's padding after speech)."""
PROMPT_WORDS = 48
NO_REPEAT_NGRAMS = 3
"""A turn that loops, or says a phrase twice in a row, even without its prompt is decoded once
more with no 3-word sequence allowed twice: the loop's confidence was hiding how little the
model believed the words (Welsh "Dyweda joc" is "To my third jock," three times; without the
loop nothing is believed), and a sentence said twice was settled as such ("The Old Man knew how
to read and had already read the book." twice, on speech that says it once)."""
"""How much of the speaker's settled text goes into the prompt (its last words)."""

_WORD = re.compile(r"[\w']+")


class DecodesArrays(Protocol):
    def transcribe_array(
        self,
        audio: np.ndarray,
        language: str | None,
        *,
        final: bool,
        speech_ratio: float = 1.0,
        prompt: str | None = None,
        scope: Scope = Scope.UTTERANCE,
        no_repeat_ngrams: int = 0,
        vocabulary: str = "",
    ) -> Transcription: ...


@dataclass(frozen=True, slots=True)
class TurnAudio:
    pcm: bytes
    language: str | None
    speech_ratio: float
    prompt: str
    """The speaker's recent settled text ('' for none)."""
    vocabulary: str = ""
    """The session's hot words ('' for none)."""


@dataclass(frozen=True, slots=True)
class SettledTurn:
    transcription: Transcription
    """Times from the start of the turn's audio."""
    clean: bool
    """Nothing about it looked wrong: fit to be the next turn's prompt."""
    prompted: bool
    """The prompt was kept (not dropped after a suspicious first decoding)."""
    usable: bool = True
    """False: even without a prompt the decoding loops; the turn's finals stand instead."""


def words_of(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def repetition_loop(text: str) -> bool:
    """A run of one word five times, or of a 2-6 word phrase three times in a row: Whisper's
    loop, rarely speech."""
    words = words_of(text)
    for n in range(1, 7):
        needed = 5 if n == 1 else 3
        for start in range(0, len(words) - n * needed + 1):
            phrase = words[start : start + n]
            if all(words[start + k * n : start + (k + 1) * n] == phrase for k in range(needed)):
                return True
    return False


def repeats_phrase(text: str, *, words: int = 3) -> bool:
    """A phrase of ``words`` or more words said twice in a row ("of any consequence of any
    consequence"): rare in speech, common in a decoding that lost its place."""
    found = words_of(text)
    for n in range(words, len(found) // 2 + 1):
        for start in range(0, len(found) - 2 * n + 1):
            if found[start : start + n] == found[start + n : start + 2 * n]:
                return True
    return False


def loops(text: str) -> bool:
    """Whisper's loop, or a phrase repeated: what makes a final be decoded again."""
    return repetition_loop(text) or repeats_phrase(text)


def echoes_prompt(text: str, prompt: str, *, run: int = 5) -> bool:
    """The decoding repeats ``run`` consecutive words of the prompt's end."""
    tail = words_of(prompt)[-24:]
    words = words_of(text)
    if len(tail) < run or len(words) < run:
        return False
    grams = {tuple(tail[i : i + run]) for i in range(len(tail) - run + 1)}
    return any(tuple(words[i : i + run]) in grams for i in range(len(words) - run + 1))


def stops_short(result: Transcription, duration_s: float) -> bool:
    """The decoding ended well before the audio did: Whisper gave up mid-turn (seen with a
    prompt: "... Mr Fish is a" and the rest of a 17 s turn missing)."""
    if not result.words:
        return False
    return duration_s - result.words[-1].end > STOPS_SHORT_S


def suspicious(result: Transcription, prompt: str, duration_s: float) -> bool:
    return (
        result.dropped_segments > 0
        or loops(result.text)
        or stops_short(result, duration_s)
        or (bool(prompt) and echoes_prompt(result.text, prompt))
    )


def without_doubtful_tail(result: Transcription, *, below: float = DOUBTFUL_WORD) -> Transcription:
    """Drops the words at the end that the model itself barely believes (a prompt invites
    Whisper to go on past the speech: "... never been surpassed. rest.")."""
    words = list(result.words)
    text = result.text.rstrip()
    while words and words[-1].probability < below and text.endswith(words[-1].word):
        text = text[: -len(words[-1].word)].rstrip()
        words.pop()
    if len(words) == len(result.words):
        return result
    end = words[-1].end if words else result.start
    return dataclasses.replace(result, text=text, words=tuple(words), end=end)


def prompt_from(text: str, *, words: int = PROMPT_WORDS) -> str:
    """The last ``words`` words of a speaker's settled text."""
    parts = text.split()
    return " ".join(parts[-words:])


def settle_turn(
    model: DecodesArrays, turn: TurnAudio, *, lead_s: float = TURN_LEAD_S
) -> SettledTurn:
    lead = np.zeros(int(lead_s * 16000), np.float32)
    audio = np.concatenate([lead, s16_to_float(turn.pcm)])

    def decode(prompt: str, no_repeat_ngrams: int = 0) -> Transcription:
        decoded = model.transcribe_array(
            audio,
            turn.language,
            final=True,
            speech_ratio=turn.speech_ratio,
            prompt=prompt,
            scope=Scope.TURN,
            no_repeat_ngrams=no_repeat_ngrams,
            vocabulary=turn.vocabulary,
        )
        return without_doubtful_tail(decoded.shifted(-lead_s))

    duration_s = len(turn.pcm) / 32000
    result = decode(turn.prompt)
    prompted = bool(turn.prompt)
    if prompted and suspicious(result, turn.prompt, duration_s):
        result = decode("")
        prompted = False
    looped = loops(result.text)
    if looped:  # a loop, or a phrase said twice in a row, even without the prompt
        result = decode("", NO_REPEAT_NGRAMS)
        prompted = False
    if stops_short(result, duration_s) and not result.out_of_language:
        return SettledTurn(result, clean=False, prompted=prompted, usable=False)
    clean = not looped and not suspicious(result, "", duration_s) and bool(result.text)
    return SettledTurn(result, clean=clean, prompted=prompted)
