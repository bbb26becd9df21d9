"""Translations into English by the transcriber's own multilingual model.

After a turn spoken in another language is published, its audio (still in hand) goes
through Whisper's translate task when the session's turns are to be read in English
(``shared.keys.translation_targets``, kept by the session's ingest connection). The
translation is published as the translator's are: once per turn and language, to the
speaker's session and its room. No cloud account, no second model.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis

from shared import keys
from shared.errors import SchemaError
from shared.schema import TranscriptionJob, TranslationDone, TranslationTargets, TurnTranscript
from shared.translations import publish_translation
from transcriber import logger
from transcriber.metrics import TranscriberMetrics

MODEL_FAILURES = (RuntimeError, ValueError, MemoryError)
"""What a decode raises when the model fails (CTranslate2's errors are RuntimeErrors)."""


class TranslatesSpeech(Protocol):
    def translate_to_english(self, pcm: bytes, language: str) -> str: ...


def english_target(languages: tuple[str, ...]) -> str | None:
    """The reader's code for English (``en``, ``en-GB``...), if English is among them."""
    return next((t for t in languages if t.split("-", 1)[0].lower() == "en"), None)


class EnglishTranslations:
    def __init__(
        self, client: redis.Redis, model: TranslatesSpeech, metrics: TranscriberMetrics
    ) -> None:
        self._redis = client
        self._model = model
        self._metrics = metrics
        self.translated = 0

    def after_turn(self, job: TranscriptionJob, turn: TurnTranscript) -> None:
        """Translates the turn just published, if its session wants it in English."""
        result = turn.result
        said = bool(result.text) or turn.fallback  # a fallback's text is its finals', at ingest
        if not said or not result.language or result.language.split("-", 1)[0].lower() == "en":
            return
        targets = self._targets(job.session_id)
        target = english_target(targets.languages) if targets and targets.whisper else None
        if targets is None or target is None:
            return
        ready = time.time()
        code = message = text = ""
        try:
            text = self._model.translate_to_english(job.pcm, result.language)
        except MODEL_FAILURES as exc:
            logger.exception(
                "session %s: translating turn %d failed", job.session_id, turn.turn_index
            )
            self._metrics.errors.labels("translate").inc()
            code, message = "model_error", f"the model could not translate: {exc}"
        done_at = time.time()
        self._metrics.model_seconds.labels("translate").inc(done_at - ready)
        done = TranslationDone(
            session_id=job.session_id,
            speaker=targets.speaker,
            utterance_index=job.last_utterance,
            source_language=result.language,
            target_language=target,
            text=text,
            error_code=code,
            error_message=message,
            latency_s=round(done_at - ready, 4),
            turn_index=turn.turn_index,
        )
        if publish_translation(self._redis, done, targets.room):
            self.translated += 1

    def _targets(self, session_id: str) -> TranslationTargets | None:
        data = self._redis.get(keys.translation_targets(session_id))
        if not isinstance(data, bytes):
            return None
        try:
            return TranslationTargets.decode(data)
        except SchemaError:
            logger.warning("session %s: unreadable translation targets", session_id)
            return None
