"""Requesting translations of a session's finals: budget (pure) and the rq queue (I/O)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import redis
from rq import Queue, Worker

from shared import keys
from shared.rate import TokenBucket
from shared.schema import TranslationJob

AVAILABILITY_TTL_S = 5.0
RESULT_TTL_S = 600
FAILURE_TTL_S = 7 * 24 * 3600


class CharacterBudget:
    """A token bucket of characters per minute for one session (0: unlimited)."""

    def __init__(self, per_minute: int, *, now: float) -> None:
        self._bucket = TokenBucket(per_minute / 60.0, float(per_minute), now=now)

    def allow(self, characters: int, *, now: float) -> bool:
        return self._bucket.capacity == 0 or self._bucket.take(characters, now=now)


class TranslationQueue:
    """The ingest node's handle on the rq translation queue. rq is synchronous, so its calls
    run in a worker thread, off the event loop."""

    def __init__(self, redis_url: str, queue_name: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._queue = Queue(queue_name, connection=self._redis)
        self._checked_at = -AVAILABILITY_TTL_S
        self._available = False

    async def available(self) -> bool:
        """Whether any translator is listening (cached for a few seconds)."""
        now = time.monotonic()
        if now - self._checked_at >= AVAILABILITY_TTL_S:
            count = await asyncio.to_thread(Worker.count, queue=self._queue)
            self._available = count > 0
            self._checked_at = now
        return self._available

    async def enqueue(self, jobs: Sequence[TranslationJob]) -> None:
        await asyncio.to_thread(self._enqueue, jobs)

    def _enqueue(self, jobs: Sequence[TranslationJob]) -> None:
        for job in jobs:
            self._queue.enqueue_call(
                keys.TRANSLATION_JOB_FUNCTION,
                args=(job.encode(),),
                job_id=f"translate-{job.session_id}-{job.utterance_index}-{job.target_language}",
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                description=(
                    f"translate {job.session_id}-{job.utterance_index} to {job.target_language}"
                ),
            )

    def close(self) -> None:
        self._redis.close()
