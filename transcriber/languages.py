"""The language of a detecting session's jobs: Whisper's detection with the session's recent
choices as the prior (:mod:`transcriber.language_choice`), the history kept in Redis so that
every transcriber sees the same speaker."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
import redis

from shared import keys
from shared.errors import SchemaError
from shared.redis_client import SESSION_TTL_LUA
from shared.schema import TranscriptionJob
from transcriber import logger
from transcriber.language_choice import Detection, LanguageChoice, LanguageOptions, choose_language

# KEYS: the session's language history, its record. ARGV: the detection, how many to keep.
_PUSH = (
    SESSION_TTL_LUA
    + """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], session_ttl(KEYS[2]))
"""
)


class DetectsLanguages(Protocol):
    def detect_languages(self, pcm: bytes) -> list[tuple[str, float]]: ...


class SessionLanguages:
    def __init__(
        self, client: redis.Redis, model: DetectsLanguages, options: LanguageOptions
    ) -> None:
        self._redis = client
        self._model = model
        self.options = options

    def resolve(
        self, job: TranscriptionJob, *, final: bool
    ) -> tuple[TranscriptionJob, LanguageChoice | None]:
        """The job with its language chosen, and the choice (None: the session named its
        language, or a partial, which takes the speaker's latest without a detection)."""
        if job.language is not None:
            return job, None
        history = self.history(job.session_id)
        if not final:
            if history:
                return msgspec.structs.replace(job, language=history[0].language), None
            return job, None
        seconds = len(job.pcm) / 32000
        choice = choose_language(
            self._model.detect_languages(job.pcm), history, seconds, self.options
        )
        if choice.language != choice.detected:
            logger.info(
                "session %s: %.1f s detected as %s, kept as %s (the speaker's recent language)",
                job.session_id,
                seconds,
                choice.detected,
                choice.language,
            )
        return msgspec.structs.replace(job, language=choice.language), choice

    def history(self, session_id: str) -> list[Detection]:
        if self.options.history == 0:
            return []
        found: Any = self._redis.lrange(
            keys.language_history(session_id), 0, self.options.history - 1
        )
        history = []
        for data in found or ():
            try:
                history.append(Detection.decode(data))
            except SchemaError:
                logger.warning("session %s: an unreadable language detection", session_id)
        return history

    def record(self, job: TranscriptionJob, choice: LanguageChoice) -> None:
        if self.options.history == 0:
            return
        detection = Detection(choice.language, choice.probability, len(job.pcm) / 32000)
        self._redis.eval(
            _PUSH,
            2,
            keys.language_history(job.session_id),
            keys.resumable_session(job.session_id),
            detection.encode(),
            self.options.history,
        )
