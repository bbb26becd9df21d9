"""Issue 30's figures on one ``up`` of this machine (JSON out): a healthy session's final
latency alone and beside a connection flooding empty audio frames, and ``/healthz`` while
thousands of slow uploads are attempted from another loopback address.

    PYTHONPATH=. .venv/bin/python docs/benchmarks/door_attacks.py --slow 20000 \
        --output docs/benchmarks/door-attacks.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect

from streamscribe.benchmarks.metrics import load_manifest
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, is_ready, start_up, stop_up, wait_until

HEALTHY = next(
    e for e in load_manifest(DATA / "manifest.jsonl") if e.id == "ls-test-clean-1089-134686-0000"
)


async def final_latencies(url: str) -> list[float]:
    """The healthy session's finals: end of speech to arrival, from ``server_timing``."""
    run = await stream_audio(url, read_audio(HEALTHY.audio), speed=1.0)
    return [f.message.server_timing["endpoint_to_send_s"] for f in run.finals]  # type: ignore[attr-defined]


async def flood_beside(url: str) -> tuple[list[float], int | None, int]:
    stop = asyncio.Event()
    sent = 0

    async def flood() -> int | None:
        nonlocal sent
        async with connect(url, max_queue=None) as ws:
            await ws.recv()
            with contextlib.suppress(Exception):
                while not stop.is_set():
                    await ws.send(b"")
                    sent += 1
                    if sent % 1000 == 0:
                        await asyncio.sleep(0)
            return ws.close_code

    flooding = asyncio.create_task(flood())
    await asyncio.sleep(0.5)
    latencies = await final_latencies(url)
    stop.set()
    return latencies, await flooding, sent


def health_during_slow_uploads(port: int, count: int) -> dict[str, object]:
    held: list[socket.socket] = []
    refused = 0
    health: list[float] = []
    started = time.monotonic()
    for n in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: a\r\nX")
            held.append(sock)
        except OSError:
            refused += 1
            sock.close()
        if n % 500 == 0:
            t = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
                assert answer.status == 200
            health.append(time.monotonic() - t)
        if len(held) > 3000:  # keep this client within its own file limit
            for s in held[:1000]:
                s.close()
            del held[:1000]
    for s in held:
        s.close()
    return {
        "attempted": count,
        "seconds": round(time.monotonic() - started, 1),
        "refused_at_connect": refused,
        "healthz_checks": len(health),
        "healthz_s_max": round(max(health), 4),
        "healthz_s_p50": round(statistics.median(health), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=int, default=20000)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    running = start_up(free_port())
    url = running.url
    try:
        assert wait_until(lambda: is_ready(running), timeout=180)
        asyncio.run(final_latencies(url))  # warm-up
        alone = asyncio.run(final_latencies(url))
        beside, code, sent = asyncio.run(flood_beside(url))
        alone_after = asyncio.run(final_latencies(url))
        port = int(running.http.rsplit(":", 1)[1])
        slow = health_during_slow_uploads(port, args.slow)
    finally:
        stop_up(running)
    result = {
        "machine": "2 cores, tiny.en int8, 2 transcribers, one up",
        "healthy_final_latency_s": {
            "alone_before": alone,
            "beside_empty_frame_flood": beside,
            "alone_after": alone_after,
            "median_alone": statistics.median(alone + alone_after),
            "median_beside_flood": statistics.median(beside),
        },
        "flood": {"empty_frames_sent": sent, "close_code": code},
        "slow_uploads": slow,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
