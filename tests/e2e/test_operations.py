"""What operators see of a running pipeline: every part's metrics, health and readiness,
and ``streamscribe status``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from shared import keys
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import RedisServer, free_port
from tests.conftest import DATA, RunningPipeline, wait_until

pytestmark = pytest.mark.e2e


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def samples(url: str) -> dict[str, float]:
    """Every sample of a /metrics page, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(fetch(url)[1]):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def status(pipeline: RunningPipeline) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamscribe",
            "status",
            "--json",
            "--redis-url",
            pipeline.redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def test_every_part_is_alive_ready_and_measured(pipeline: RunningPipeline) -> None:
    run = asyncio.run(
        stream_audio(pipeline.url, read_audio(DATA / "jfk-inaugural-1961.wav"), speed=4.0)
    )
    assert run.close_code == 1000 and run.finals
    client = redis.Redis.from_url(pipeline.redis_url)
    # the latency samples reach Redis with ingest's next heartbeat
    assert wait_until(lambda: client.llen(keys.FINAL_LATENCIES) >= len(run.finals), every=0.2)
    client.close()

    report = status(pipeline)
    parts = report["parts"]
    assert isinstance(parts, list)
    assert sorted((p["kind"], p["jobs"]) for p in parts) == [
        ("ingest", "all"),
        ("segmenter", "all"),
        ("transcriber", "files"),  # up's transcriber for uploads
        ("transcriber", "live"),
        ("transcriber", "live"),
    ]
    assert all(p["ready"] for p in parts)
    latency = report["latency"]
    assert isinstance(latency, dict) and latency["finals"] >= len(run.finals)

    by_kind: dict[str, list[dict[str, float]]] = {}
    for part in parts:
        url = part["metrics_url"]
        assert fetch(url.replace("/metrics", "/healthz"))[0] == 200
        assert fetch(url.replace("/metrics", "/readyz")) == (200, "ready\n")
        by_kind.setdefault(part["kind"], []).append(samples(url))

    [ingest] = by_kind["ingest"]
    assert ingest["streamscribe_finals_delivered_total{}"] >= len(run.finals)
    assert ingest["streamscribe_final_latency_seconds_count{}"] >= len(run.finals)
    assert ingest["streamscribe_audio_seconds_in_total{}"] >= 10.0
    [segmenter] = by_kind["segmenter"]
    assert segmenter["streamscribe_segmenter_sessions_opened_total{}"] >= 1
    assert segmenter["streamscribe_utterances_total{}"] >= len(run.finals)
    transcribers = by_kind["transcriber"]
    assert sum(t["streamscribe_batch_size_count{}"] for t in transcribers) >= len(run.finals)
    model_seconds = [
        seconds
        for t in transcribers
        for name, seconds in t.items()
        if name.startswith("streamscribe_model_seconds_total{kind=")
    ]
    assert sum(model_seconds) > 0
    assert all("streamscribe_utterance_backlog{}" in t for t in transcribers)
    assert all(t["streamscribe_jobs_waiting{queue=final}"] >= 0 for t in transcribers)


def test_status_screen_names_each_part(pipeline: RunningPipeline) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamscribe", "status", "--redis-url", pipeline.redis_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for word in ("ingest", "segmenter", "transcriber", "queue ss:jobs:final", "final latency"):
        assert word in done.stdout


def _readyz(port: int) -> tuple[int, str] | None:
    try:
        return fetch(f"http://127.0.0.1:{port}/readyz")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()
    except OSError:  # not listening yet
        return None


def test_ingest_is_ready_only_once_a_transcriber_has_its_model(redis_server: RedisServer) -> None:
    """Parts started one by one: ingest's /readyz says 503 and why until a transcriber with
    its model loaded beats, then 200 (its /healthz is 200 throughout: the process answers)."""
    redis_url = f"{redis_server.url}/9"
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    env = {
        **os.environ,
        "STREAMSCRIBE_REDIS_URL": redis_url,
        "STREAMSCRIBE_PORT": str(port),
        "STREAMSCRIBE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "streamscribe"]
    parts = [subprocess.Popen([*command, "ingest"], env=env)]
    try:
        not_yet = (503, "no transcriber is ready (its model may still be loading)\n")
        assert wait_until(lambda: _readyz(port) == not_yet, timeout=60)
        assert fetch(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        parts.append(subprocess.Popen([*command, "transcriber"], env=env))
        assert wait_until(lambda: _readyz(port) == (200, "ready\n"), timeout=120, every=0.2)
    finally:
        for part in parts:
            part.terminate()
        for part in parts:
            assert part.wait(timeout=60) == 0
