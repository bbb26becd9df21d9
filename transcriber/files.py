"""Windows of uploaded recordings, decoded as faster-whisper decodes a file.

Each window is at most Whisper's 30 s (ingest cuts the recording at pauses), decoded with
Whisper's full encoder window, its temperature fallback and the window's earlier text as
context: what a user running faster-whisper on the file gets, one window at a time.
"""

from __future__ import annotations

from typing import Any, Protocol

from shared.audio import PIPELINE_SAMPLE_RATE, s16_to_float
from shared.file_jobs import FileSegment, FileTask, FileWindowJob, FileWindowResult
from shared.schema import Word

FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""OpenAI's ``temperature=0``: start greedy, go up when a decode looks wrong."""


class TranscribesFiles(Protocol):
    def transcribe_file_window(self, job: FileWindowJob) -> FileWindowResult: ...


class CannotTranslate(ValueError):
    """An English-only model was asked to translate."""


def decode_window(
    whisper: Any, job: FileWindowJob, *, beam_size: int, multilingual: bool
) -> FileWindowResult:
    """``whisper``: a loaded faster-whisper ``WhisperModel`` set to its full window."""
    if job.task is FileTask.TRANSLATE and not multilingual:
        raise CannotTranslate("this model is English-only and cannot translate")
    temperatures = (job.temperature,) if job.temperature > 0 else FALLBACK_TEMPERATURES
    segments, info = whisper.transcribe(
        s16_to_float(job.pcm),
        language=job.language if multilingual else "en",
        task=job.task.value,
        beam_size=beam_size,
        temperature=temperatures,
        initial_prompt=job.prompt or None,
        word_timestamps=job.word_timestamps,
        condition_on_previous_text=True,
        vad_filter=False,
    )
    offset = job.start_sample / PIPELINE_SAMPLE_RATE
    return FileWindowResult(
        upload_id=job.upload_id,
        window_index=job.window_index,
        language=str(info.language),
        language_probability=round(float(info.language_probability), 4),
        segments=tuple(_segment(s, offset) for s in segments),
    )


def _segment(segment: Any, offset: float) -> FileSegment:
    return FileSegment(
        start=round(offset + float(segment.start), 3),
        end=round(offset + float(segment.end), 3),
        text=str(segment.text),
        tokens=tuple(int(t) for t in segment.tokens),
        temperature=float(segment.temperature or 0.0),
        avg_logprob=round(float(segment.avg_logprob), 4),
        compression_ratio=round(float(segment.compression_ratio), 4),
        no_speech_prob=round(float(segment.no_speech_prob), 4),
        words=tuple(
            Word(
                str(w.word),
                round(offset + float(w.start), 3),
                round(offset + float(w.end), 3),
                round(float(w.probability), 4),
            )
            for w in segment.words or ()
        ),
    )
