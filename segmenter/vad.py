"""webrtcvad behind the :class:`segmenter.core.SpeechDetector` protocol."""

from __future__ import annotations

import webrtcvad

from shared.audio import PIPELINE_SAMPLE_RATE


class WebRtcSpeechDetector:
    def __init__(self, aggressiveness: int) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        return bool(self._vad.is_speech(frame, PIPELINE_SAMPLE_RATE))
