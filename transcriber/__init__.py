"""Whisper transcription workers (faster-whisper)."""

import logging

logger = logging.getLogger("streamscribe.transcriber")
