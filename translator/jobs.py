"""The rq job: translate one final into one language and publish the result once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from shared import keys
from shared.schema import TranslationDone, TranslationJob
from shared.translations import publish_translation
from translator import logger
from translator.backends import TranslationError, Translator

JOB_FUNCTION = keys.TRANSLATION_JOB_FUNCTION


@dataclass(frozen=True, slots=True)
class TranslationService:
    translator: Translator
    redis: redis.Redis

    def run(self, job: TranslationJob) -> TranslationDone:
        try:
            text = self.translator.translate(job.text, job.source_language, job.target_language)
        except TranslationError as exc:
            logger.warning(
                "translation of %s-%d to %s failed: %s",
                job.session_id,
                job.utterance_index,
                job.target_language,
                exc,
            )
            self._publish(job, _done(job, "", exc.code, exc.message))
            raise  # rq records the job in its failed-job registry
        done = _done(job, text)
        self._publish(job, done)
        return done

    def _publish(self, job: TranslationJob, done: TranslationDone) -> None:
        """At most one message per utterance (or turn) and language, whatever retries happen."""
        if not publish_translation(self.redis, done, job.room):
            logger.info(
                "translation of %s turn %d already published", job.session_id, job.turn_index
            )


def _done(job: TranslationJob, text: str, code: str = "", message: str = "") -> TranslationDone:
    return TranslationDone(
        session_id=job.session_id,
        speaker=job.speaker,
        utterance_index=job.utterance_index,
        source_language=job.source_language,
        target_language=job.target_language,
        text=text,
        error_code=code,
        error_message=message,
        latency_s=round(time.time() - job.enqueued_at, 4),
        turn_index=job.turn_index,
    )


class _Installed:
    """The worker process's service, installed once at start-up before any job runs."""

    service: TranslationService | None = None


def install(service: TranslationService) -> None:
    _Installed.service = service


def translate(payload: str) -> str:
    """rq entry point (by dotted path): ``payload`` is an encoded :class:`TranslationJob`."""
    service = _Installed.service
    if service is None:
        raise RuntimeError("no translation service installed in this worker process")
    return service.run(TranslationJob.decode(payload)).text
