"""What operators see of a running pipeline: every part's metrics, health and readiness,
and ``streamscribe status``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamscribe.client import read_audio, stream_audio
from tests.conftest import DATA, RunningPipeline

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
    time.sleep(2.5)  # one heartbeat: the latency samples reach Redis

    report = status(pipeline)
    parts = report["parts"]
    assert isinstance(parts, list)
    assert sorted(p["kind"] for p in parts) == ["ingest", "segmenter", "transcriber", "transcriber"]
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
    assert sum(t["streamscribe_model_seconds_total{}"] for t in transcribers) > 0
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
