"""Final jobs survive a transcriber's death: reclaimed when idle, dead-lettered when poison.

A job in hand is kept fresh by the worker's heartbeat (``XCLAIM ... JUSTID`` to itself), so
only the jobs of a dead or hung transcriber go idle. Those are taken over by any transcriber
after ``reclaim_after_s``; each takeover counts as an attempt, and a job that has been tried
``max_attempts`` times goes to the dead-letter stream and its speaker gets an error for that
utterance instead of waiting forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from shared import keys
from shared.redis_client import publish_result
from shared.schema import (
    JobKind,
    TranscriptionJob,
    TranscriptResult,
    TurnTranscript,
    UtteranceFailed,
)

DEAD_LETTERS_KEPT = 10000


@dataclass(frozen=True, slots=True)
class RecoveryOptions:
    reclaim_after_s: float = 10.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.reclaim_after_s <= 0 or self.max_attempts < 1:
            raise ValueError("reclaim_after_s must be positive and max_attempts at least 1")


RELIABLE_STREAMS = (keys.FINAL_JOBS_STREAM, keys.TURN_JOBS_STREAM)
"""The job streams whose jobs are never lost: reclaimed, or dead-lettered."""


@dataclass(frozen=True, slots=True)
class Reclaimed:
    stream: str
    entry_id: bytes
    fields: dict[bytes, bytes]
    attempts: int


class JobRecovery:
    def __init__(
        self,
        client: redis.Redis,
        consumer: str,
        options: RecoveryOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        streams: Sequence[str] = RELIABLE_STREAMS,
    ) -> None:
        """``streams``: the job streams this recovery looks after."""
        self._redis = client
        self._streams = tuple(streams)
        self._consumer = consumer
        self.options = options
        self._clock = clock
        """When to look again (the jobs' idle times are Redis's own clock)."""
        self._next_check = -float("inf")

    def reclaim_due(self) -> list[Reclaimed]:
        """Final and turn jobs idle past the deadline on any consumer, now this one's; at
        most every half deadline."""
        now = self._clock()
        if now < self._next_check:
            return []
        self._next_check = now + self.options.reclaim_after_s / 2
        return [r for stream in self._streams for r in self._reclaim(stream)]

    def _reclaim(self, stream: str) -> list[Reclaimed]:
        response: Any = self._redis.xautoclaim(
            stream,
            keys.TRANSCRIBER_GROUP,
            self._consumer,
            min_idle_time=int(self.options.reclaim_after_s * 1000),
            start_id="0-0",
            count=100,
        )
        claimed = [(entry_id, fields) for entry_id, fields in response[1] if fields]
        if not claimed:
            return []
        counts = self._delivery_counts(stream, [entry_id for entry_id, _ in claimed])
        return [
            Reclaimed(stream, i, f, counts.get(i, self.options.max_attempts)) for i, f in claimed
        ]

    def _delivery_counts(self, stream: str, entry_ids: list[bytes]) -> dict[bytes, int]:
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(
                stream,
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

    def keep_fresh(self, pipe: redis.client.Pipeline, in_hand: Sequence[tuple[str, bytes]]) -> None:
        """Resets the idle time of the jobs in hand, (stream, entry id) (from the heartbeat)."""
        for stream in self._streams:
            entry_ids = [entry_id for s, entry_id in in_hand if s == stream]
            if entry_ids:
                pipe.xclaim(
                    stream,
                    keys.TRANSCRIBER_GROUP,
                    self._consumer,
                    0,
                    cast(Any, entry_ids),
                    justid=True,
                )

    def dead_letter(
        self,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        job: TranscriptionJob | None,
        reason: str,
        *,
        stream: str = keys.FINAL_JOBS_STREAM,
        tell: Callable[[redis.client.Pipeline], object] | None = None,
    ) -> None:
        """Moves a job that will not succeed aside and tells its speaker (a turn's speaker
        keeps the turn's finals: its turn is published as a fallback); ``tell``: who else is
        told, in the same transaction (an upload waiting for the window)."""
        pipe = self._redis.pipeline(transaction=True)
        if tell is not None:
            tell(pipe)
        dead = dict(fields)
        dead[b"reason"] = reason.encode()
        dead[b"entry_id"] = entry_id
        pipe.xadd(keys.DEAD_JOBS_STREAM, dead, maxlen=DEAD_LETTERS_KEPT, approximate=True)  # type: ignore[arg-type]
        pipe.xack(stream, keys.TRANSCRIBER_GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        if job is not None and job.kind is JobKind.TURN:
            publish_result(pipe, job.session_id, fallback_turn(job).encode())
        elif job is not None:
            failed = UtteranceFailed(job.session_id, job.utterance_index, reason)
            publish_result(pipe, job.session_id, failed.encode())
        pipe.execute()


def fallback_turn(job: TranscriptionJob) -> TurnTranscript:
    """A turn that could not be settled: its finals stand."""
    start = job.start_sample / 16000
    result = TranscriptResult(
        session_id=job.session_id,
        utterance_index=job.last_utterance,
        partial_seq=0,
        text="",
        start=start,
        end=start + len(job.pcm) / 32000,
        language=job.language or "",
        language_probability=0.0,
        wall_start=job.wall_start,
    )
    return TurnTranscript(
        result, job.utterance_index, job.first_utterance, job.last_utterance, True, job.endpoint_at
    )
