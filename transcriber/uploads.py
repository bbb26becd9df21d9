"""The upload windows a transcriber holds: taken only when no live job waits, one decoded
per step, kept fresh while held, reclaimed from a dead transcriber, dead-lettered (with an
error for the upload) after every attempt failed."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import redis

from shared import keys
from shared.errors import SchemaError
from shared.file_jobs import FileWindowJob, FileWindowResult
from shared.redis_client import ensure_consumer
from transcriber import logger
from transcriber.files import CannotTranslate, TranscribesFiles
from transcriber.metrics import TranscriberMetrics
from transcriber.recovery import JobRecovery, RecoveryOptions

RESULTS_KEPT_S = 3600
"""How long an upload's results stream outlives its last window."""
RESULTS_MAXLEN = 100_000


@dataclass(frozen=True, slots=True)
class _Held:
    entry_id: bytes
    fields: dict[bytes, bytes]
    job: FileWindowJob
    attempts: int = 1


class UploadWindows:
    def __init__(
        self,
        client: redis.Redis,
        consumer: str,
        model: TranscribesFiles,
        metrics: TranscriberMetrics,
        recovery: RecoveryOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._consumer = consumer
        self._model = model
        self._metrics = metrics
        self.recovery = JobRecovery(
            client, consumer, recovery, clock=clock, streams=(keys.FILE_JOBS_STREAM,)
        )
        self._held: deque[_Held] = deque()
        self.windows_done = 0

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def prepare(self) -> None:
        ensure_consumer(self._redis, keys.FILE_JOBS_STREAM, keys.TRANSCRIBER_GROUP, self._consumer)

    def reclaim(self) -> None:
        for reclaimed in self.recovery.reclaim_due():
            held = self._decode(reclaimed.entry_id, reclaimed.fields, reclaimed.attempts)
            if held is None:
                continue
            if held.attempts > self.recovery.options.max_attempts:
                self._dead_letter(held, "a transcriber died on every attempt at this window")
            else:
                logger.warning(
                    "took over upload window %s (attempt %d)", held.entry_id, held.attempts
                )
                self._held.append(held)

    def take(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        held = self._decode(entry_id, fields, 1)
        if held is not None:
            self._held.append(held)

    def in_hand(self) -> list[tuple[str, bytes]]:
        return [(keys.FILE_JOBS_STREAM, h.entry_id) for h in self._held]

    def run_one(self) -> None:
        """Decodes the oldest window held and sends its result to the upload."""
        held = self._held.popleft()
        job = held.job
        if not self._redis.exists(keys.upload_live(job.upload_id)):
            logger.info("upload %s has gone: window %d skipped", job.upload_id, job.window_index)
            self._metrics.shed.labels("file").inc()
            self._finish(held, None)
            return
        started = time.time()
        try:
            result = self._model.transcribe_file_window(job)
        except CannotTranslate as exc:
            self._finish(held, _failure(job, str(exc)))
            return
        except Exception as exc:  # the model failed: another attempt, then an error
            logger.exception(
                "upload %s window %d failed (attempt %d)",
                job.upload_id,
                job.window_index,
                held.attempts,
            )
            self._metrics.errors.labels("model").inc()
            if held.attempts >= self.recovery.options.max_attempts:
                self._dead_letter(held, f"transcription failed: {exc}")
            # else left pending, no longer kept fresh: reclaimed after reclaim_after_s
            return
        done = time.time()
        metrics = self._metrics
        metrics.audio_seconds.inc(len(job.pcm) / 2 / 16000)
        metrics.model_seconds.labels("file").inc(done - started)
        metrics.jobs.labels("file").inc()
        metrics.queue_wait.labels("file").observe(max(0.0, started - job.enqueued_at))
        self._finish(held, result)
        self.windows_done += 1

    def keep_fresh(self, pipe: redis.client.Pipeline) -> None:
        self.recovery.keep_fresh(pipe, self.in_hand())

    def _finish(self, held: _Held, result: FileWindowResult | None) -> None:
        pipe = self._redis.pipeline(transaction=True)
        if result is not None:
            _send(pipe, result)
        pipe.xack(keys.FILE_JOBS_STREAM, keys.TRANSCRIBER_GROUP, held.entry_id)
        pipe.xdel(keys.FILE_JOBS_STREAM, held.entry_id)
        pipe.execute()

    def _decode(self, entry_id: bytes, fields: dict[bytes, bytes], attempts: int) -> _Held | None:
        try:
            return _Held(entry_id, fields, FileWindowJob.decode(fields), attempts)
        except SchemaError:
            logger.exception("dropping undecodable upload window %s", entry_id)
            self._metrics.errors.labels("bad_job").inc()
            pipe = self._redis.pipeline(transaction=False)
            pipe.xack(keys.FILE_JOBS_STREAM, keys.TRANSCRIBER_GROUP, entry_id)
            pipe.xdel(keys.FILE_JOBS_STREAM, entry_id)
            pipe.execute()
            return None

    def _dead_letter(self, held: _Held, reason: str) -> None:
        logger.error(
            "upload %s window %d failed %d times: dead-lettered",
            held.job.upload_id,
            held.job.window_index,
            held.attempts,
        )
        self._metrics.errors.labels("dead_letter").inc()
        failure = _failure(held.job, reason)
        self.recovery.dead_letter(
            held.entry_id, held.fields, None, reason,
            stream=keys.FILE_JOBS_STREAM, tell=lambda pipe: _send(pipe, failure),
        )  # fmt: skip


def _failure(job: FileWindowJob, reason: str) -> FileWindowResult:
    return FileWindowResult(
        upload_id=job.upload_id,
        window_index=job.window_index,
        language=job.language or "",
        language_probability=0.0,
        error=reason,
    )


def _send(pipe: redis.client.Pipeline, result: FileWindowResult) -> None:
    stream = keys.upload_results(result.upload_id)
    pipe.xadd(stream, {"result": result.encode()}, maxlen=RESULTS_MAXLEN, approximate=True)
    pipe.expire(stream, RESULTS_KEPT_S)
