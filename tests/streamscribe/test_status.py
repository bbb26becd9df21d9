"""``streamscribe status`` read from a real Redis."""

from __future__ import annotations

import time

import redis

from shared import keys
from shared.schema import JobKind, LatencySample, PartHeartbeat, TranscriptionJob
from streamscribe.status import read_status, render
from tests.transcriber.jobs import job


def beat(part_id: str, kind: str, *, sessions: int = 0) -> PartHeartbeat:
    now = time.time()
    return PartHeartbeat(kind, part_id, "host", 1, now - 60, now - 1, "", True, sessions, 3)


def test_status_shows_live_parts_queues_and_recent_latency(redis_client: redis.Redis) -> None:
    now = time.time()
    for part in (
        beat("i1", "ingest", sessions=2),
        beat("i2", "ingest", sessions=3),
        beat("t1", "transcriber"),
    ):
        redis_client.set(keys.part_heartbeat(part.part_id), part.encode(), ex=10)
        redis_client.sadd(keys.PARTS_INDEX, part.part_id)
    redis_client.sadd(keys.PARTS_INDEX, "dead")  # its heartbeat key has expired
    final: TranscriptionJob = job(JobKind.FINAL)
    redis_client.xadd(keys.FINAL_JOBS_STREAM, final.encode(), id=f"{int((now - 4) * 1000)}-0")  # type: ignore[arg-type]
    redis_client.xadd(keys.FINAL_JOBS_STREAM, final.encode())  # type: ignore[arg-type]
    for seconds in (0.2, 0.4, 0.6, 0.8, 3.0):
        redis_client.lpush(keys.FINAL_LATENCIES, LatencySample(now - 5, seconds).encode())
    redis_client.lpush(keys.FINAL_LATENCIES, LatencySample(now - 3600, 99.0).encode())  # old

    status = read_status(redis_client, now=now)

    assert [p.part_id for p in status.parts] == ["i1", "i2", "t1"]
    assert not redis_client.sismember(keys.PARTS_INDEX, "dead")
    assert status.sessions == 5
    final_queue = status.queues[0]
    assert final_queue.waiting == 2 and 3.9 < final_queue.oldest_age_s < 4.5
    assert status.latency.finals == 5
    assert (status.latency.p50_s, status.latency.p95_s) == (0.6, 3.0)
    screen = render(status)
    assert "sessions connected: 5" in screen
    assert "p50 0.600 s  p95 3.000 s" in screen
    assert '"sessions": 5' in status.to_json()


def test_status_of_an_empty_redis_says_nothing_runs(redis_client: redis.Redis) -> None:
    status = read_status(redis_client)
    assert status.parts == () and status.latency.p50_s is None
    assert "no part has sent a heartbeat" in render(status)
