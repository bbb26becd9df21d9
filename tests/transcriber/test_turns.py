"""Settling turns: the guards (pure) and the real tiny.en model on a recording's turns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from segmenter.core import UtteranceEnded
from segmenter.options import SegmenterOptions
from segmenter.turns import TurnEnded
from shared.settings import Settings
from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.benchmarks.tuning import segment
from streamscribe.client import read_audio
from streamscribe.options import model_options
from transcriber.model import SpeechModel
from transcriber.results import Transcription, WordTiming
from transcriber.turns import (
    NO_REPEAT_NGRAMS,
    TurnAudio,
    echoes_prompt,
    loops,
    prompt_from,
    repeats_phrase,
    repetition_loop,
    settle_turn,
)
from transcriber.windows import Scope

DATA = Path(__file__).parents[1] / "data"


def test_repetition_loops_are_found_and_plain_speech_is_not() -> None:
    assert repetition_loop("thank you thank you thank you for watching")
    assert repetition_loop("so so so so so")
    assert not repetition_loop("no, no, I said it was fine, it was fine")
    assert not repetition_loop("the cat sat on the mat and the dog sat on the log")


def test_a_final_that_loops_or_repeats_a_phrase_is_found() -> None:
    assert loops("God bless me, I hope I will go on to the end of the end of the end")
    assert repeats_phrase("the only part of any consequence of any consequence which")
    assert not repeats_phrase("no, no, I said so")  # two words: speech
    # speech does it too; what it costs is one more decode on the full window, never text
    assert repeats_phrase("I said it was fine, it was fine")
    assert not repeats_phrase("the end of the end")
    assert not loops("There were three good hotels, several stores, drapers, watchmakers.")


def test_echoing_the_prompt_is_found() -> None:
    prompt = "and so it was that the king of the north rode out at dawn"
    assert echoes_prompt("the king of the north rode out again", prompt)
    assert not echoes_prompt("he came back at noon with his men", prompt)
    assert not echoes_prompt("the king", "")


def test_prompt_keeps_the_last_words() -> None:
    assert prompt_from("one two three four", words=2) == "three four"


class ScriptedDecoder:
    """Answers each decoding with the next scripted text, and records the prompts asked."""

    def __init__(self, *texts: str, dropped: int = 0) -> None:
        self._texts: Iterator[str] = iter(texts)
        self._dropped = dropped
        self.prompts: list[str | None] = []
        self.no_repeat: list[int] = []

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
    ) -> Transcription:
        assert scope is Scope.TURN
        self.prompts.append(prompt)
        self.no_repeat.append(no_repeat_ngrams)
        text = next(self._texts)
        if text == FOREIGN:  # what the language guard leaves of another language
            return Transcription("", 0.0, 0.0, "en", 1.0, (), 1, out_of_language=True)
        words = tuple(
            WordTiming(w, 0.5 + 0.3 * i, 0.75 + 0.3 * i, 0.9) for i, w in enumerate(text.split())
        )
        end = words[-1].end if words else 0.5
        return Transcription(text, 0.5, end, "en", 1.0, words, self._dropped)


FOREIGN = "<out of language>"


AUDIO = TurnAudio(bytes(32000), None, 1.0, "the story so far was told by him")


def test_a_clean_turn_keeps_its_prompt_and_may_prompt_the_next() -> None:
    decoder = ScriptedDecoder("and then he left")
    settled = settle_turn(decoder, AUDIO)
    assert decoder.prompts == [AUDIO.prompt]
    assert (settled.prompted, settled.clean, settled.usable) == (True, True, True)
    assert settled.transcription.text == "and then he left"


def test_a_turn_that_echoes_its_prompt_is_decoded_again_without_it() -> None:
    decoder = ScriptedDecoder("the story so far was told by him", "and then he left")
    settled = settle_turn(decoder, AUDIO)
    assert decoder.prompts == [AUDIO.prompt, ""]
    assert not settled.prompted and settled.clean
    assert settled.transcription.text == "and then he left"


LOOP = "you know you know you know you know"


def test_a_turn_that_still_loops_is_decoded_once_more_with_no_phrase_repeated() -> None:
    decoder = ScriptedDecoder(LOOP, LOOP, "you know what I mean")
    settled = settle_turn(decoder, AUDIO)
    assert decoder.prompts == [AUDIO.prompt, "", ""]
    assert decoder.no_repeat == [0, 0, NO_REPEAT_NGRAMS]
    assert settled.usable and settled.transcription.text == "you know what I mean"
    assert not settled.clean  # it looped twice: never the next turn's prompt


def test_a_loop_hiding_another_language_settles_the_turn_as_nothing() -> None:
    settled = settle_turn(ScriptedDecoder(LOOP, LOOP, FOREIGN), AUDIO)
    assert settled.usable and settled.transcription.out_of_language
    assert settled.transcription.text == "" and not settled.clean


def test_a_turn_that_stops_short_is_unusable_and_never_a_prompt() -> None:
    decoder = ScriptedDecoder("and then", "and then")
    long_audio = TurnAudio(bytes(32000 * 6), None, 1.0, AUDIO.prompt)  # words end at 1.05 s
    settled = settle_turn(decoder, long_audio)
    assert not settled.usable and not settled.clean


def test_a_turn_that_repeats_a_phrase_is_decoded_again_without_its_prompt() -> None:
    repeated = "to my third jock, to my third jock."
    decoder = ScriptedDecoder(repeated, "and then he left")
    settled = settle_turn(decoder, AUDIO)
    assert decoder.prompts == [AUDIO.prompt, ""]
    assert settled.transcription.text == "and then he left" and settled.clean
    twice = "the old man knew how to read. the old man knew how to read."
    decoder = ScriptedDecoder(twice, twice, "the old man knew how to read.")
    again = settle_turn(decoder, AUDIO)
    assert decoder.no_repeat == [0, 0, NO_REPEAT_NGRAMS]  # said twice without the prompt too
    assert again.usable and again.transcription.text == "the old man knew how to read."
    assert not again.clean  # it repeated itself twice: never the next turn's prompt


def test_text_the_guards_flagged_is_never_a_prompt() -> None:
    settled = settle_turn(ScriptedDecoder("words", "words", dropped=1), AUDIO)
    assert settled.usable and not settled.clean


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    return SpeechModel(model_options(Settings()))


def test_turns_of_a_long_recording_settle_at_least_as_well_as_its_finals(
    model: SpeechModel,
) -> None:
    [entry] = [e for e in load_manifest(DATA / "manifest.jsonl") if e.id.startswith("long-ljs")]
    pcm = read_audio(entry.audio).pcm
    events = segment(pcm, SegmenterOptions())
    finals = [e for e in events if isinstance(e, UtteranceEnded)]
    turns = [e for e in events if isinstance(e, TurnEnded)]
    assert 1 <= len(turns) < len(finals)
    fast = " ".join(model.transcribe(f.pcm, None, final=True).text for f in finals)
    settled_text = ""
    prompts = 0
    for turn in turns:
        settled = settle_turn(
            model, TurnAudio(turn.pcm, None, turn.speech_ratio, prompt_from(settled_text))
        )
        assert settled.usable
        prompts += settled.prompted
        settled_text = f"{settled_text} {settled.transcription.text}".strip()
    assert prompts >= 1  # later turns were decoded with the earlier text as context
    fast_wer = corpus_wer([entry.text], [fast])
    settled_wer = corpus_wer([entry.text], [settled_text])
    print(f"\n{fast}\n{settled_text}")
    assert settled_wer <= fast_wer + 0.005, (settled_wer, fast_wer)


def test_welsh_that_loops_in_the_english_model_settles_as_no_text(model: SpeechModel) -> None:
    # tiny.en hears "Dyweda jôc" as "To my third jock, to my third jock, to my third jock."
    pcm = read_audio(DATA / "cy-macsen-001-dyweda-joc.wav").pcm
    [turn] = [e for e in segment(pcm, SegmenterOptions()) if isinstance(e, TurnEnded)]
    settled = settle_turn(model, TurnAudio(turn.pcm, None, turn.speech_ratio, ""))
    assert settled.usable and settled.transcription.out_of_language
    assert settled.transcription.text == "" and not settled.clean
