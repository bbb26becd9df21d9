"""``streamscribe status``: one screen on the whole pipeline, read from Redis."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import redis

from shared import keys
from shared.errors import SchemaError
from shared.observability import live_parts
from shared.redis_client import QueueStats, queue_stats
from shared.schema import LatencySample, PartHeartbeat
from streamscribe.statistics import percentile

LATENCY_WINDOW_S = 300.0


@dataclass(frozen=True, slots=True)
class LatencySummary:
    window_s: float
    finals: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    at: float
    parts: tuple[PartHeartbeat, ...]
    queues: tuple[QueueStats, ...]
    latency: LatencySummary

    @property
    def sessions(self) -> int:
        """Connected clients, as the ingest nodes count them."""
        return sum(p.sessions for p in self.parts if p.kind == "ingest")

    def to_json(self) -> str:
        fields: dict[str, Any] = msgspec.to_builtins(self)
        return json.dumps({**fields, "sessions": self.sessions}, indent=2)


def read_status(client: redis.Redis, *, now: float | None = None) -> PipelineStatus:
    now = time.time() if now is None else now
    return PipelineStatus(
        at=now,
        parts=tuple(live_parts(client)),
        queues=(
            queue_stats(client, keys.FINAL_JOBS_STREAM, now=now),
            queue_stats(client, keys.PARTIAL_JOBS_STREAM, now=now),
            queue_stats(client, keys.FILE_JOBS_STREAM, now=now),
        ),
        latency=_latency(client, now),
    )


def _latency(client: redis.Redis, now: float) -> LatencySummary:
    samples = []
    for raw in client.lrange(keys.FINAL_LATENCIES, 0, -1):
        try:
            sample = LatencySample.decode(raw if isinstance(raw, bytes) else raw.encode())
        except SchemaError:
            continue
        if now - sample.at <= LATENCY_WINDOW_S:
            samples.append(sample.seconds)
    return LatencySummary(
        window_s=LATENCY_WINDOW_S,
        finals=len(samples),
        p50_s=percentile(samples, 50),
        p95_s=percentile(samples, 95),
        p99_s=percentile(samples, 99),
    )


def render(status: PipelineStatus) -> str:
    lines = [f"streamscribe status at {time.strftime('%H:%M:%S', time.localtime(status.at))}"]
    lines.append("")
    lines.append(f"{'part':<17} {'id':<40} {'ready':<6} {'age':>5} {'sessions':>8} {'jobs':>7}")
    for part in status.parts:
        age = status.at - part.sent_at
        kind = part.kind if part.jobs == "all" else f"{part.kind}:{part.jobs}"
        lines.append(
            f"{kind:<17} {part.part_id[:40]:<40} {'yes' if part.ready else 'NO':<6} "
            f"{age:4.1f}s {part.sessions:>8} {part.jobs_done:>7}"
        )
    if not status.parts:
        lines.append("(no part has sent a heartbeat: is the pipeline running on this Redis?)")
    lines.append("")
    lines.append(f"sessions connected: {status.sessions}")
    for queue in status.queues:
        lines.append(
            f"queue {queue.stream:<16} waiting {queue.waiting:>5}   "
            f"oldest {queue.oldest_age_s:6.2f} s"
        )
    latency = status.latency

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    lines.append(
        f"final latency, last {latency.window_s / 60:.0f} min ({latency.finals} finals): "
        f"p50 {show(latency.p50_s)}  p95 {show(latency.p95_s)}  p99 {show(latency.p99_s)}"
    )
    return "\n".join(lines)
