"""Final jobs survive a transcriber's death: reclaimed when idle, dead-lettered when poison.

A job in hand is kept fresh by the worker's heartbeat (``XCLAIM ... JUSTID`` to itself), so
only the jobs of a dead or hung transcriber go idle. Those are taken over by any transcriber
after ``reclaim_after_s``; each takeover counts as an attempt, and a job that has been tried
``max_attempts`` times goes to the dead-letter stream and its speaker gets an error for that
utterance instead of waiting forever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from shared import keys
from shared.redis_client import publish_result
from shared.schema import TranscriptionJob, UtteranceFailed

DEAD_LETTERS_KEPT = 10000


@dataclass(frozen=True, slots=True)
class RecoveryOptions:
    reclaim_after_s: float = 10.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.reclaim_after_s <= 0 or self.max_attempts < 1:
            raise ValueError("reclaim_after_s must be positive and max_attempts at least 1")


@dataclass(frozen=True, slots=True)
class Reclaimed:
    entry_id: bytes
    fields: dict[bytes, bytes]
    attempts: int


class JobRecovery:
    def __init__(self, client: redis.Redis, consumer: str, options: RecoveryOptions) -> None:
        self._redis = client
        self._consumer = consumer
        self.options = options
        self._next_check = 0.0

    def reclaim_due(self) -> list[Reclaimed]:
        """Final jobs idle past the deadline on any consumer, now this one's; at most every
        half deadline."""
        now = time.monotonic()
        if now < self._next_check:
            return []
        self._next_check = now + self.options.reclaim_after_s / 2
        response: Any = self._redis.xautoclaim(
            keys.FINAL_JOBS_STREAM,
            keys.TRANSCRIBER_GROUP,
            self._consumer,
            min_idle_time=int(self.options.reclaim_after_s * 1000),
            start_id="0-0",
            count=100,
        )
        claimed = [(entry_id, fields) for entry_id, fields in response[1] if fields]
        if not claimed:
            return []
        counts = self._delivery_counts([entry_id for entry_id, _ in claimed])
        return [Reclaimed(i, f, counts.get(i, self.options.max_attempts)) for i, f in claimed]

    def _delivery_counts(self, entry_ids: list[bytes]) -> dict[bytes, int]:
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(
                keys.FINAL_JOBS_STREAM,
                keys.TRANSCRIBER_GROUP,
                min=entry_id,
                max=entry_id,
                count=1,
            )
        counts = {}
        for entries in pipe.execute():
            for entry in entries:
                message_id = entry["message_id"]
                counts[message_id if isinstance(message_id, bytes) else message_id.encode()] = int(
                    entry["times_delivered"]
                )
        return counts

    def keep_fresh(self, pipe: redis.client.Pipeline, entry_ids: list[bytes]) -> None:
        """Resets the idle time of the jobs in hand (called from the heartbeat)."""
        if entry_ids:
            pipe.xclaim(
                keys.FINAL_JOBS_STREAM,
                keys.TRANSCRIBER_GROUP,
                self._consumer,
                0,
                cast(Any, entry_ids),
                justid=True,
            )

    def dead_letter(
        self, entry_id: bytes, fields: dict[bytes, bytes], job: TranscriptionJob | None, reason: str
    ) -> None:
        """Moves a job that will not succeed aside and tells its speaker."""
        pipe = self._redis.pipeline(transaction=True)
        dead = dict(fields)
        dead[b"reason"] = reason.encode()
        dead[b"entry_id"] = entry_id
        pipe.xadd(keys.DEAD_JOBS_STREAM, dead, maxlen=DEAD_LETTERS_KEPT, approximate=True)  # type: ignore[arg-type]
        pipe.xack(keys.FINAL_JOBS_STREAM, keys.TRANSCRIBER_GROUP, entry_id)
        pipe.xdel(keys.FINAL_JOBS_STREAM, entry_id)
        if job is not None:
            failed = UtteranceFailed(job.session_id, job.utterance_index, reason)
            publish_result(pipe, job.session_id, failed.encode())
        pipe.execute()
