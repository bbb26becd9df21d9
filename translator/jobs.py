"""The rq job: translate one final into one language and publish the result once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from shared import keys
from shared.redis_client import publish_result
from shared.schema import TranslationDone, TranslationJob
from translator import logger
from translator.backends import TranslationError, Translator

STATS_KEY = "ss:translator:stats"
LATENCY_KEY = "ss:translator:latency"
LATENCY_SAMPLES = 1000
DEDUP_TTL_S = 24 * 3600
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
        about = job.utterance_index if job.turn_index < 0 else f"t{job.turn_index}"
        dedup = f"{keys.session_state(job.session_id)}:tr:{about}:{job.target_language}"
        if not self.redis.set(dedup, b"1", nx=True, ex=DEDUP_TTL_S):
            logger.info("translation %s already published", dedup)
            return
        data = done.encode()
        pipe = self.redis.pipeline(transaction=False)
        publish_result(pipe, job.session_id, data)
        if job.room is not None:
            log = keys.room_log(job.room)
            pipe.xadd(log, {"e": data}, maxlen=keys.ROOM_LOG_KEPT, approximate=True)
            pipe.expire(log, keys.ROOM_LOG_TTL_S)
            pipe.publish(keys.room_channel(job.room), data)
        pipe.hincrby(STATS_KEY, f"error:{done.error_code}" if done.error_code else "ok", 1)
        if not done.error_code:
            pipe.lpush(LATENCY_KEY, f"{done.latency_s:.4f}")
            pipe.ltrim(LATENCY_KEY, 0, LATENCY_SAMPLES - 1)
        pipe.execute()


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
