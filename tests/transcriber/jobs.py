"""Transcription jobs as the segmenter would send them, for the transcriber's tests."""

from __future__ import annotations

import time

from shared.schema import JobKind, TranscriptionJob
from streamscribe.client import read_audio
from tests.conftest import DATA

PCM = read_audio(DATA / "ls-test-clean-1089-134691-0000.wav").pcm


def job(kind: JobKind, index: int = 0, seq: int = 0, revision: int = 0) -> TranscriptionJob:
    return TranscriptionJob(
        kind=kind,
        session_id="s1",
        utterance_index=index,
        revision=revision,
        partial_seq=seq,
        start_sample=32000,
        pcm=PCM,
        language="en",
        speech_ratio=0.9,
        endpoint_at=time.time(),
        enqueued_at=time.time(),
    )
