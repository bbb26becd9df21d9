"""1,000 sessions opened, streamed briefly and closed: Redis and every part go back to their
baseline memory. The figures are written to artifacts/sessions-1000.json."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from shared.observability import live_parts
from streamscribe.client import Audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import RunningPipeline, start_up, stop_up, wait_until

pytestmark = pytest.mark.e2e

SESSIONS = 1000
WAVE = 50
ARTIFACTS = Path(__file__).parents[2] / "artifacts"


@pytest.fixture(scope="module")
def busy() -> Iterator[RunningPipeline]:
    # a short resume window: what a resume needs expires 2 + 10 s after each session
    env = {"STREAMSCRIBE_MAX_AUDIO_RATE": "20", "STREAMSCRIBE_RESUME_WINDOW_S": "2"}
    running = start_up(free_port(), transcribers=1, env=env)
    yield running
    stop_up(running)


def measure(pipeline: RunningPipeline, client: redis.Redis) -> dict[str, Any]:
    info: Any = client.info("memory")
    rss = {}
    for child in psutil.Process(pipeline.pid).children():
        command = child.cmdline()
        name = "redis" if "redis-server" in " ".join(command) else command[-1]
        rss[name] = round(child.memory_info().rss / 2**20, 1)
    return {
        "redis_used_memory_mib": round(info["used_memory"] / 2**20, 2),
        "redis_keys": client.dbsize(),
        "rss_mib": rss,
    }


def settle(client: redis.Redis, keys_at_most: int) -> None:
    """Waits (up to a minute) for the sessions' resume keys to expire."""
    wait_until(lambda: client.dbsize() <= keys_at_most, timeout=60, every=0.5)
    since = time.time()

    def every_part_idle() -> bool:  # each has sent a heartbeat since, holding no session
        parts = live_parts(client)
        return bool(parts) and all(p.sent_at > since and p.sessions == 0 for p in parts)

    wait_until(every_part_idle, timeout=30, every=0.2)


def test_a_thousand_sessions_leave_nothing_behind(busy: RunningPipeline) -> None:
    client = redis.Redis.from_url(busy.redis_url)
    half_second = Audio(bytes(16000), 16000)

    async def one() -> int | None:
        run = await stream_audio(busy.url, half_second, speed=10.0, params={"partials": "false"})
        return run.close_code

    async def waves(count: int) -> list[int | None]:
        codes: list[int | None] = []
        for start in range(0, count, WAVE):
            codes += await asyncio.gather(*(one() for _ in range(min(WAVE, count - start))))
        return codes

    # A first thousand warms every code path and brings the allocators to their working size;
    # the second thousand must then leave memory where the first one left it.
    cold = measure(busy, client)
    assert set(asyncio.run(waves(SESSIONS))) == {1000}
    settle(client, cold["redis_keys"] + 2)
    baseline = measure(busy, client)
    started = time.monotonic()
    codes = asyncio.run(waves(SESSIONS))
    elapsed = time.monotonic() - started
    settle(client, baseline["redis_keys"] + 2)
    after = measure(busy, client)
    report = {
        "cold": cold,
        "sessions": SESSIONS,
        "seconds": round(elapsed, 1),
        "baseline": baseline,
        "after": after,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "sessions-1000.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))

    assert codes.count(1000) == SESSIONS
    assert after["redis_keys"] <= baseline["redis_keys"] + 2  # no per-session key left
    assert after["redis_used_memory_mib"] <= baseline["redis_used_memory_mib"] + 1.0
    for part in ("ingest", "segmenter", "transcriber"):
        grown = after["rss_mib"][part] - baseline["rss_mib"][part]
        assert grown < 8, f"{part} grew {grown:.1f} MiB over {SESSIONS} sessions"
