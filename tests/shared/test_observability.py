"""Heartbeats in a real Redis and the /metrics, /healthz, /readyz server."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import redis
from prometheus_client import CollectorRegistry

from shared import keys
from shared.observability import CommonMetrics, HealthServer, Heartbeat, PartLoad, live_parts
from shared.schema import PartHeartbeat
from tests.conftest import wait_until


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_health_server_answers_each_path() -> None:
    registry = CollectorRegistry()
    metrics = CommonMetrics(registry, "test")
    metrics.errors.labels("model").inc(3)
    problems: list[str | None] = ["redis is not answering"]
    server = HealthServer(registry, lambda: problems[0], host="127.0.0.1", port=0).start()
    try:
        status, body = get(f"{server.url}/metrics")
        assert status == 200 and 'streamscribe_errors_total{kind="model"} 3.0' in body
        assert get(f"{server.url}/healthz") == (200, "ok\n")
        assert get(f"{server.url}/readyz") == (503, "redis is not answering\n")
        problems[0] = None
        assert get(f"{server.url}/readyz") == (200, "ready\n")
        assert get(f"{server.url}/nope")[0] == 404
    finally:
        server.stop()


def test_heartbeat_is_renewed_expires_and_is_removed(redis_client: redis.Redis) -> None:
    registry = CollectorRegistry()
    seen: list[int] = []
    heartbeat = Heartbeat(
        redis_client,
        "transcriber",
        load=lambda: PartLoad(jobs_done=7),
        metrics=CommonMetrics(registry, "transcriber"),
        metrics_url="http://127.0.0.1:1/metrics",
        interval_s=0.1,
        observe=lambda client: seen.append(len(live_parts(client))),
    ).start()
    key = keys.part_heartbeat(heartbeat.part_id)

    def sent_at() -> float:
        value = redis_client.get(key)
        assert isinstance(value, bytes)
        return PartHeartbeat.decode(value).sent_at

    try:
        first = sent_at()
        assert wait_until(lambda: sent_at() > first)  # renewed, not just written once
        value = redis_client.get(key)
        assert isinstance(value, bytes)
        beat = PartHeartbeat.decode(value)
        assert (beat.kind, beat.jobs_done, beat.ready) == ("transcriber", 7, True)
        assert 0 < redis_client.pttl(key) <= 300
        assert heartbeat.redis_ok
        assert seen and seen[0] == 1  # after each beat, the part sees the live parts
    finally:
        heartbeat.stop()
    assert redis_client.get(key) is None
    assert not redis_client.sismember(keys.PARTS_INDEX, heartbeat.part_id)


def test_heartbeat_counts_redis_failures_and_reports_not_ok() -> None:
    registry = CollectorRegistry()
    metrics = CommonMetrics(registry, "segmenter")
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.2)
    heartbeat = Heartbeat(unreachable, "segmenter", load=PartLoad, metrics=metrics)
    heartbeat.beat()
    assert not heartbeat.redis_ok
    assert registry.get_sample_value("streamscribe_redis_errors_total") == 1


@pytest.mark.parametrize("bad", [b"{}", b"[1]", b'{"v": 1, "kind": 3}'])
def test_bad_heartbeats_are_schema_errors(bad: bytes) -> None:
    from shared.errors import SchemaError

    with pytest.raises(SchemaError):
        PartHeartbeat.decode(bad)
