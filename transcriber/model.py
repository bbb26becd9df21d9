"""Loading the Whisper model and transcribing one utterance, with hallucination guards."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.audio import s16_to_float
from shared.errors import ModelLoadError
from shared.file_jobs import FileWindowJob, FileWindowResult
from transcriber import logger
from transcriber.alignment import aligned_words
from transcriber.batching import SegmentOutcome, pack_utterances
from transcriber.files import decode_window
from transcriber.offline_models import offline_model
from transcriber.options import ModelOptions
from transcriber.results import SegmentStats, Transcription, WordTiming, timed_words
from transcriber.turns import SettledTurn, TurnAudio, loops, settle_turn
from transcriber.windows import FULL_WINDOW_SAMPLES, Scope, WindowOptions, whisper_model_class

__all__ = ["Scope", "SegmentStats", "SpeechModel", "Transcription", "UtteranceAudio", "WordTiming"]

LEAD_SILENCE_S = 0.2
"""Silence put before each utterance: Whisper starts worse on audio that opens with speech
(measured on ../shared/audio: streamed WER 0.0588 without, 0.0495 with 200 ms)."""


@dataclass(frozen=True, slots=True)
class UtteranceAudio:
    """One utterance to transcribe: 16 kHz s16le mono PCM and what the segmenter knows of it."""

    pcm: bytes
    language: str | None
    speech_ratio: float = 1.0
    vocabulary: str = ""
    """Hot words: names and terms the speaker uses ('' for none)."""


def resolve_model(name: str) -> str:
    """A directory for offline models (tiny.en, the default, and multilingual base ship on
    PyPI), else the hub name."""
    if os.path.isdir(name):
        return name
    return offline_model(name) or name


def fetch_model(name: str) -> str:
    """Where the model ``name`` is, downloading it first if it comes from the hub; used at
    image build time. ``none`` fetches nothing (the model is cached on first start)."""
    if name == "none":
        return "none: the model is fetched on first start"
    source = resolve_model(name)
    if os.path.isdir(source):
        return source
    from faster_whisper import download_model

    try:
        return str(download_model(name))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot download model {name!r}: {exc}") from exc


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def needs_fallback(stats: SegmentStats, options: ModelOptions) -> bool:
    """What makes Whisper retry at a higher temperature; the batched pass has no retries."""
    if stats.compression_ratio > options.compression_ratio_threshold:
        return True
    silent = stats.no_speech_prob > options.no_speech_threshold
    return stats.avg_logprob < options.log_prob_threshold and not silent


SURE_NO_SPEECH = 0.9
UNSURE_LOGPROB = -0.7
"""Whisper sure there is no speech and unsure of what it wrote: "you" or "." for 1-5 s of
digital silence (no-speech probability 0.95-0.97, average log probability -0.83 to -0.99,
on a short window and on the full one), which Whisper's own rule (-1.0) lets through."""

OUT_OF_LANGUAGE_LOGPROB = -0.65
OUT_OF_LANGUAGE_WORD_PROBABILITY = 0.7
UNBELIEVED_WORD_PROBABILITY = 0.35
"""Below this mean word probability the words are not believed whatever the log probability
(a one-word segment's timestamp tokens lift its average: "Passat" at 0.23 for Welsh)."""


def _key(word: str) -> str:
    return word.strip(".,!?;:\"'()").lower()


def vouched_words(vocabulary: str) -> frozenset[str]:
    """The words of a session's vocabulary, as the guard compares them."""
    return frozenset(_key(w) for w in vocabulary.replace(",", " ").split() if _key(w))


def _first_occurrences(words: Sequence[WordTiming], vouched: frozenset[str]) -> list[float]:
    """Each distinct word's probability where it first comes: a decoding that loops copies
    itself with rising confidence ("to my third jock, to my third jock, ..." for Welsh), which
    must not vouch for the words it repeats. Words of the speaker's vocabulary are left out:
    a name given as a hot word comes out at a probability of 0.01, and the speaker vouched
    for it."""
    seen: set[str] = set(vouched)
    probabilities = []
    for word in words:
        key = _key(word.word)
        if key and key not in seen:
            seen.add(key)
            probabilities.append(word.probability)
    return probabilities


def sounds_out_of_language(
    stats: SegmentStats, words: Sequence[WordTiming], vouched: frozenset[str] = frozenset()
) -> bool:
    """An English-only model hearing another language writes English-sounding words it does
    not believe ("Beth, you're so with the Vary." for Welsh): a low average log probability
    and a low mean word probability together, or a very low mean word probability alone.
    Measured on ../shared/audio-cy and ../shared/audio-dev (README: "Speech the model does
    not know")."""
    probabilities = _first_occurrences(words, vouched)
    if not probabilities:
        return False
    mean = sum(probabilities) / len(probabilities)
    if mean < UNBELIEVED_WORD_PROBABILITY:
        return True
    return stats.avg_logprob < OUT_OF_LANGUAGE_LOGPROB and mean < OUT_OF_LANGUAGE_WORD_PROBABILITY


_WORD_CHARACTER = re.compile(r"\w")


def has_words(text: str) -> bool:
    """Whether Whisper wrote any word: on music or silence a short window can give "." alone,
    which says nothing to a reader (measured on ../shared/audio-dev's synthesized music)."""
    return _WORD_CHARACTER.search(text) is not None


def accept_segment(stats: SegmentStats, speech_ratio: float, options: ModelOptions) -> bool:
    """Whisper's own skip rule, plus repetition and agreement with the segmenter's VAD."""
    if stats.compression_ratio > options.compression_ratio_threshold:
        return False
    if (
        stats.no_speech_prob > options.no_speech_threshold
        and stats.avg_logprob < options.log_prob_threshold
    ):
        return False
    if stats.no_speech_prob > SURE_NO_SPEECH and stats.avg_logprob < UNSURE_LOGPROB:
        return False
    # Little of the audio was speech to the VAD and the model itself doubts there is speech.
    doubtful = stats.no_speech_prob > 0.4 or stats.avg_logprob < -1.0
    return not (speech_ratio < 0.35 and doubtful)


class SpeechModel:
    """One loaded Whisper model; not thread-safe, one per worker process."""

    def __init__(self, options: ModelOptions) -> None:
        from faster_whisper import BatchedInferencePipeline

        self.options = options
        self.device, self.compute_type = resolve_device(options.device, options.compute_type)
        source = resolve_model(options.model)
        try:
            self._model = whisper_model_class()(
                source,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=options.cpu_threads,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelLoadError(
                f"cannot load model {options.model!r} from {source}: {exc}"
            ) from exc
        self._model.max_tokens_per_s = options.max_tokens_per_s
        self.multilingual = bool(self._model.model.is_multilingual)
        margin = options.encoder_window_margin_s
        self._full_window = WindowOptions()
        partial_floor = options.partial_window_floor_s
        self._partial_window = WindowOptions(floor_s=partial_floor, margin_s=margin)
        self._final_windows = {
            Scope.UTTERANCE: WindowOptions(floor_s=options.final_window_floor_s, margin_s=margin),
            Scope.TURN: WindowOptions(floor_s=options.turn_window_floor_s, margin_s=margin),
            Scope.RECORDING: self._full_window,
        }
        self._batched = BatchedInferencePipeline(self._model)
        self.batch_fallbacks = 0
        """Utterances the batched pass could not settle, run again one at a time."""
        self.window_fallbacks = 0
        """Finals that looped on a short window, decoded again on Whisper's full one."""
        logger.info(
            "model %s loaded on %s (%s) from %s",
            options.model,
            self.device,
            self.compute_type,
            Path(source).name if os.path.isdir(source) else source,
        )

    def transcribe(
        self,
        pcm: bytes,
        language: str | None,
        *,
        final: bool,
        speech_ratio: float = 1.0,
        vocabulary: str = "",
    ) -> Transcription:
        lead = int(LEAD_SILENCE_S * 16000)
        audio = np.concatenate([np.zeros(lead, np.float32), s16_to_float(pcm)])
        # fast finals and partials are for the eye: the language guard is left to the turn,
        # whose settled text replaces them (it costs short finals 1.4 points of WER)
        result = self.transcribe_array(
            audio,
            language,
            final=final,
            speech_ratio=speech_ratio,
            language_guard=False,
            vocabulary=vocabulary,
        )
        return result.shifted(-LEAD_SILENCE_S)

    def settle_turn(self, turn: TurnAudio) -> SettledTurn:
        """A turn's audio as a whole, with its speaker's earlier text as prompt."""
        return settle_turn(self, turn)

    def transcribe_file_window(self, job: FileWindowJob) -> FileWindowResult:
        """A window of an uploaded recording (:mod:`transcriber.files`)."""
        self._model.window = self._full_window
        self._model.first_encoding = None
        try:
            return decode_window(
                self._model,
                job,
                beam_size=self.options.beam_size,
                multilingual=self.multilingual,
            )
        finally:
            self._model.first_encoding = None

    def transcribe_batch(
        self, utterances: Sequence[UtteranceAudio], *, final: bool
    ) -> list[Transcription]:
        """Many utterances through the model together (one batched generation per language).

        Results come back in the order given. An utterance whose batched decoding trips the
        temperature-fallback thresholds is transcribed again alone, with Whisper's fallback.
        """
        if len(utterances) == 1:
            u = utterances[0]
            return [
                self.transcribe(
                    u.pcm,
                    u.language,
                    final=final,
                    speech_ratio=u.speech_ratio,
                    vocabulary=u.vocabulary,
                )
            ]
        # one batched generation per language and vocabulary (the prompt is the batch's)
        kinds = [(self._language_of(u), u.vocabulary) for u in utterances]
        results: list[Transcription | None] = [None] * len(utterances)
        for kind in dict.fromkeys(kinds):
            indexes = [i for i, k in enumerate(kinds) if k == kind]
            group = [utterances[i] for i in indexes]
            for i, result in zip(
                indexes, self._batch_one_kind(group, *kind, final=final), strict=True
            ):
                results[i] = result
        return [r for r in results if r is not None]

    def translate_to_english(self, pcm: bytes, language: str) -> str:
        """Whisper's own translate task on a turn's audio spoken in ``language``: English
        text, decoded on Whisper's full window as it was trained (no extra model)."""
        if not self.multilingual:
            raise ValueError("an English-only model cannot translate")
        options = self.options
        self._model.window = self._full_window
        self._model.first_encoding = None
        segments, _ = self._model.transcribe(
            s16_to_float(pcm),
            language=language,
            task="translate",
            beam_size=options.beam_size,
            condition_on_previous_text=False,
            no_speech_threshold=options.no_speech_threshold,
            log_prob_threshold=options.log_prob_threshold,
            compression_ratio_threshold=options.compression_ratio_threshold,
            vad_filter=False,
        )
        texts = [
            s.text.strip()
            for s in segments
            if has_words(s.text)
            and accept_segment(
                SegmentStats(s.no_speech_prob, s.avg_logprob, s.compression_ratio), 1.0, options
            )
        ]
        self._model.first_encoding = None
        return " ".join(texts)

    def detect_languages(self, pcm: bytes) -> list[tuple[str, float]]:
        """Whisper's probability of each language for the audio (an English-only model: only
        English)."""
        if not self.multilingual:
            return [("en", 1.0)]
        self._model.window = self._full_window
        _, _, scores = self._model.detect_language(audio=s16_to_float(pcm))
        return [(str(language), float(p)) for language, p in scores]

    def _language_of(self, utterance: UtteranceAudio) -> str:
        if not self.multilingual:
            return "en"
        if utterance.language:
            return utterance.language
        self._model.window = self._full_window
        language, _, _ = self._model.detect_language(audio=s16_to_float(utterance.pcm))
        return str(language)

    def _batch_one_kind(
        self, group: Sequence[UtteranceAudio], language: str, vocabulary: str, *, final: bool
    ) -> list[Transcription]:
        options = self.options
        packed = pack_utterances([u.pcm for u in group], lead_s=LEAD_SILENCE_S)
        self._model.window = self._final_windows[Scope.UTTERANCE] if final else self._partial_window
        segments, info = self._batched.transcribe(
            packed.audio,
            language=language,
            beam_size=options.beam_size if final else options.partial_beam_size,
            word_timestamps=final,
            clip_timestamps=packed.clips,
            batch_size=len(group),
            vad_filter=False,
            no_speech_threshold=options.no_speech_threshold,
            log_prob_threshold=options.log_prob_threshold,
            compression_ratio_threshold=options.compression_ratio_threshold,
            hotwords=vocabulary or None,
        )
        outcomes = packed.assign(_segment_outcome(s) for s in segments)
        results = []
        for utterance, outcome, offset in zip(group, outcomes, packed.offsets, strict=True):
            stats = outcome.stats if outcome is not None else None
            if stats is not None and needs_fallback(stats, options):
                self.batch_fallbacks += 1
                results.append(
                    self.transcribe(
                        utterance.pcm,
                        language,
                        final=final,
                        speech_ratio=utterance.speech_ratio,
                        vocabulary=vocabulary,
                    )
                )
                continue
            results.append(
                _from_outcome(outcome, utterance.speech_ratio, options, info)
                .shifted(-offset)
                .shifted(-LEAD_SILENCE_S)
            )
        return results

    def transcribe_array(
        self,
        audio: np.ndarray,
        language: str | None,
        *,
        final: bool,
        speech_ratio: float = 1.0,
        prompt: str | None = None,
        language_guard: bool = True,
        scope: Scope = Scope.UTTERANCE,
        no_repeat_ngrams: int = 0,
        vocabulary: str = "",
    ) -> Transcription:
        """``prompt``: the speaker's earlier text, as Whisper's initial prompt; ``vocabulary``:
        hot words (faster-whisper puts them before the prompt);
        ``language_guard``: drop what an English-only model wrote for another language;
        ``scope``: what the audio is, which chooses the encoder window of a final decode."""
        options = self.options
        if not self.multilingual:
            language = "en"
        window = self._final_windows[scope] if final else self._partial_window
        decoded, timings, info = self._decode(
            audio,
            language,
            window,
            final=final,
            prompt=prompt,
            no_repeat_ngrams=no_repeat_ngrams,
            vocabulary=vocabulary,
        )
        looped = final and scope is Scope.UTTERANCE and loops(" ".join(s.text for s in decoded))
        if looped and window.trims:
            # a short window can loop where Whisper's own does not ("to the end of the end of
            # the end"): a fast final is decoded again as Whisper was trained (a turn has its
            # own guards, and its finals to fall back on)
            self.window_fallbacks += 1
            decoded, timings, info = self._decode(
                audio, language, self._full_window, final=True, prompt=prompt, vocabulary=vocabulary
            )
        texts: list[str] = []
        words: list[WordTiming] = []
        start = end = 0.0
        dropped = 0
        foreign = False
        for segment, timing in zip(decoded, timings, strict=True):
            stats = SegmentStats(
                segment.no_speech_prob, segment.avg_logprob, segment.compression_ratio
            )
            if not has_words(segment.text) or not accept_segment(stats, speech_ratio, options):
                dropped += 1
                continue
            if (
                language_guard
                and not self.multilingual
                and sounds_out_of_language(stats, timing, vouched_words(vocabulary))
            ):
                dropped += 1
                foreign = True
                continue
            if not texts:
                start = timing[0].start if timing else segment.start
            end = timing[-1].end if timing else segment.end
            texts.append(segment.text.strip())
            words.extend(timing)
        return Transcription(
            text=" ".join(texts),
            start=start,
            end=end,
            language=info.language,
            language_probability=info.language_probability,
            words=tuple(words),
            dropped_segments=dropped,
            out_of_language=foreign and not texts,
        )

    def _decode(
        self,
        audio: np.ndarray,
        language: str | None,
        window: WindowOptions,
        *,
        final: bool,
        prompt: str | None,
        no_repeat_ngrams: int = 0,
        vocabulary: str = "",
    ) -> tuple[list[Any], list[tuple[WordTiming, ...]], Any]:
        """faster-whisper's segments, their words, and its info; on a window cut short a
        final's words are aligned after decoding (:mod:`transcriber.alignment`)."""
        options = self.options
        align_after = final and window.trims and len(audio) <= FULL_WINDOW_SAMPLES
        self._model.window = window
        self._model.first_encoding = None
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=options.beam_size if final else options.partial_beam_size,
            word_timestamps=final and not align_after,
            initial_prompt=prompt or None,
            condition_on_previous_text=False,
            no_speech_threshold=options.no_speech_threshold,
            log_prob_threshold=options.log_prob_threshold,
            compression_ratio_threshold=options.compression_ratio_threshold,
            vad_filter=False,
            no_repeat_ngram_size=no_repeat_ngrams,
            hotwords=vocabulary or None,
        )
        decoded = list(segments)
        if align_after:
            frames = len(audio) // self._model.feature_extractor.hop_length
            first = self._model.first_encoding
            timings = aligned_words(self._model, decoded, first, frames, info.language)
        else:
            timings = [_words_of(s) for s in decoded]
        self._model.first_encoding = None
        return decoded, timings, info


def _words_of(segment: Any) -> tuple[WordTiming, ...]:
    return timed_words((w.word, w.start, w.end, w.probability) for w in segment.words or ())


def _segment_outcome(segment: Any) -> SegmentOutcome:
    return SegmentOutcome(
        seek=int(segment.seek),
        text=str(segment.text),
        start=float(segment.start),
        end=float(segment.end),
        stats=SegmentStats(
            float(segment.no_speech_prob),
            float(segment.avg_logprob),
            float(segment.compression_ratio),
        ),
        words=_words_of(segment),
    )


def _from_outcome(
    outcome: SegmentOutcome | None, speech_ratio: float, options: ModelOptions, info: Any
) -> Transcription:
    """A batched segment (times in the packed audio) after the same guards as one by one."""
    language, probability = str(info.language), float(info.language_probability)
    if outcome is None or not has_words(outcome.text):
        return Transcription("", 0.0, 0.0, language, probability, (), 0)
    if not accept_segment(outcome.stats, speech_ratio, options):
        return Transcription("", 0.0, 0.0, language, probability, (), 1)
    words = outcome.words
    start = words[0].start if words else outcome.start
    end = words[-1].end if words else outcome.end
    return Transcription(outcome.text.strip(), start, end, language, probability, words, 0)
