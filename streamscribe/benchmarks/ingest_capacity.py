"""``streamscribe bench-ingest``: how many real-time streams one ingest process carries.

No model runs: a private Redis, one ingest process and (by default) one segmenter, which
cuts the speech into jobs that no transcriber takes. ``streams`` WebSocket clients open
sessions, a few at a time, and each sends a real recording (looped) at real time in frames
of ``frame_ms``. Once all are streaming, the benchmark measures for ``window_s``: the ingest
process's CPU and memory per stream, Redis's commands and CPU per stream-second, the
segmenter's CPU, and how late the clients' frames went out (so a load generator that could
not keep up is seen, not mistaken for the server's limit). JSON out.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared.errors import ConfigError
from streamscribe.client import read_audio
from streamscribe.redis_server import RedisServer, free_port
from streamscribe.statistics import percentile


@dataclass(frozen=True, slots=True)
class IngestCapacityOptions:
    recording: str
    streams: int = 500
    window_s: float = 60.0
    frame_ms: int = 100
    opens_per_s: float = 50.0
    segmenters: int = 1
    output: str = "bench-results/ingest-capacity.json"


@dataclass
class _Load:
    """What the clients saw."""

    lateness_s: list[float]
    opened: int = 0
    failed: int = 0
    closed_early: int = 0
    frames: int = 0


def _spawn(part: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamscribe", part], env=env, stdout=subprocess.DEVNULL
    )


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"ingest exited ({process.returncode}) before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise ConfigError(f"ingest not healthy at {url} in {timeout_s} s")


def _redis_figures(client: redis.Redis) -> tuple[int, float, int]:
    """Commands processed, CPU seconds, bytes used, so far."""
    info = client.info()
    cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return int(info["total_commands_processed"]), cpu, int(info["used_memory"])


def _command_counts(client: redis.Redis) -> dict[str, int]:
    """Calls so far of each command (those a script makes counted as themselves too)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _audio_seconds_in(metrics_url: str) -> float:
    """The audio ingest has put in the pipeline so far (its own counter)."""
    with urllib.request.urlopen(metrics_url, timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("streamscribe_audio_seconds_in_total "):
                return float(line.split()[1])
    raise ConfigError(f"no audio counter at {metrics_url}")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _stream(
    url: str, pcm: bytes, *, frame_bytes: int, frame_s: float, stop: asyncio.Event, load: _Load
) -> None:
    try:
        ws: ClientConnection = await connect(url, open_timeout=30, max_size=2**22)
    except (OSError, TimeoutError):
        load.failed += 1
        return
    async with ws:
        try:
            await ws.recv()  # session.begin
        except ConnectionClosed:  # refused: counted, the others carry on
            load.failed += 1
            return
        load.opened += 1
        reader = asyncio.create_task(_drain(ws))
        clock = time.monotonic()
        offset = number = 0
        while not stop.is_set():
            due = clock + number * frame_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                load.lateness_s.append(-delay)
            if reader.done():
                load.closed_early += 1
                return
            await ws.send(pcm[offset : offset + frame_bytes])
            load.frames += 1
            offset = (offset + frame_bytes) % (len(pcm) - frame_bytes)
            number += 1
        reader.cancel()


async def _drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def _run_load(
    url: str,
    options: IngestCapacityOptions,
    pcm: bytes,
    measure: Any,
) -> tuple[_Load, dict[str, Any]]:
    frame_bytes = 16000 * options.frame_ms // 1000 * 2
    load = _Load(lateness_s=[])
    stop = asyncio.Event()
    tasks = []
    for number in range(options.streams):
        start = (number * frame_bytes * 7) % (len(pcm) - frame_bytes)  # not all in step
        tasks.append(
            asyncio.create_task(
                _stream(
                    url,
                    pcm[start:] + pcm[:start],
                    frame_bytes=frame_bytes,
                    frame_s=options.frame_ms / 1000,
                    stop=stop,
                    load=load,
                )
            )
        )
        await asyncio.sleep(1 / options.opens_per_s)
    await asyncio.sleep(5)  # every session open and streaming
    load.lateness_s.clear()
    figures = await measure()
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    return load, figures


class _Measure:
    """The figures of one window of the load."""

    def __init__(
        self,
        client: redis.Redis,
        ingest: psutil.Process,
        segmenters: list[psutil.Process],
        metrics_url: str,
        window_s: float,
    ) -> None:
        self._client = client
        self._ingest = ingest
        self._segmenters = segmenters
        self._metrics_url = metrics_url
        self._window_s = window_s

    async def run(self) -> dict[str, Any]:
        commands0, redis_cpu0, _ = _redis_figures(self._client)
        counts0 = _command_counts(self._client)
        audio0 = await asyncio.to_thread(_audio_seconds_in, self._metrics_url)
        client_cpu0 = _cpu(psutil.Process())
        psutil.cpu_percent()
        ingest_cpu0 = _cpu(self._ingest)
        segmenter_cpu0 = sum(_cpu(p) for p in self._segmenters)
        started = time.monotonic()
        await asyncio.sleep(self._window_s)
        elapsed = time.monotonic() - started
        machine_percent = psutil.cpu_percent()
        commands1, redis_cpu1, redis_memory = _redis_figures(self._client)
        counts1 = _command_counts(self._client)
        audio1 = await asyncio.to_thread(_audio_seconds_in, self._metrics_url)
        return {
            "elapsed_s": elapsed,
            "ingest_cpu_s": _cpu(self._ingest) - ingest_cpu0,
            "client_cpu_s": _cpu(psutil.Process()) - client_cpu0,
            "machine_percent": machine_percent,
            "audio_in_s": audio1 - audio0,
            "segmenter_cpu_s": sum(_cpu(p) for p in self._segmenters) - segmenter_cpu0,
            "ingest_rss": self._ingest.memory_info().rss,
            "redis_commands": commands1 - commands0,
            "redis_cpu_s": redis_cpu1 - redis_cpu0,
            "redis_memory": redis_memory,
            "redis_calls": {
                name: calls - counts0.get(name, 0)
                for name, calls in counts1.items()
                if calls > counts0.get(name, 0)
            },
        }


def run_ingest_capacity(options: IngestCapacityOptions) -> dict[str, Any]:
    audio = read_audio(options.recording)
    if audio.sample_rate != 16000:
        raise ConfigError("the recording must be 16 kHz mono")
    server = RedisServer().start()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "STREAMSCRIBE_PORT": str(port),
        "STREAMSCRIBE_MAX_SESSIONS": str(options.streams + 10),
        "STREAMSCRIBE_LOG_LEVEL": "WARNING",
    }
    env.pop("STREAMSCRIBE_GRPC_PORT", None)
    ingest = _spawn("ingest", env)
    segmenters = [_spawn("segmenter", env) for _ in range(options.segmenters)]
    client = redis.Redis.from_url(server.url)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", ingest)
        ingest_process = psutil.Process(ingest.pid)
        segmenter_processes = [psutil.Process(p.pid) for p in segmenters]
        idle_rss = ingest_process.memory_info().rss
        idle_redis = _redis_figures(client)[2]

        url = f"ws://127.0.0.1:{port}/v1/stream?partials=false"
        measure = _Measure(
            client,
            ingest_process,
            segmenter_processes,
            f"http://127.0.0.1:{port}/metrics",
            options.window_s,
        )
        load, figures = asyncio.run(_run_load(url, options, audio.pcm, measure.run))
        if ingest.poll() is not None:
            raise ConfigError(f"ingest exited ({ingest.returncode}) under the load")
    finally:
        for process in (ingest, *segmenters):
            process.terminate()
        for process in (ingest, *segmenters):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        client.close()
        server.stop()
    report = _report(options, load, figures, idle_rss, idle_redis)
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["results"], indent=2))
    print(f"wrote {output}", file=sys.stderr)
    return report


def _report(
    options: IngestCapacityOptions,
    load: _Load,
    figures: dict[str, Any],
    idle_rss: int,
    idle_redis: int,
) -> dict[str, Any]:
    streams = max(load.opened, 1)
    elapsed = figures["elapsed_s"]
    stream_seconds = streams * elapsed
    lateness = sorted(load.lateness_s)
    return {
        "options": asdict(options),
        "cpu_count": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": {
            "streams_open": load.opened,
            "streams_refused_or_failed": load.failed,
            "streams_closed_by_server": load.closed_early,
            "frames_sent": load.frames,
            "frames_late": len(lateness),
            "frame_lateness_p95_s": round(percentile(lateness, 95) or 0.0, 4),
            "frame_lateness_max_s": round(lateness[-1], 4) if lateness else 0.0,
            "audio_in_per_stream_second": round(figures["audio_in_s"] / stream_seconds, 3),
            "ingest_cores": round(figures["ingest_cpu_s"] / elapsed, 3),
            "ingest_core_per_stream": round(figures["ingest_cpu_s"] / stream_seconds, 6),
            "ingest_rss_idle_mib": round(idle_rss / 2**20, 1),
            "ingest_rss_mib": round(figures["ingest_rss"] / 2**20, 1),
            "ingest_rss_per_stream_kib": round(
                (figures["ingest_rss"] - idle_rss) / streams / 1024, 1
            ),
            "redis_commands_per_s": round(figures["redis_commands"] / elapsed, 1),
            "redis_commands_per_stream_second": round(
                figures["redis_commands"] / stream_seconds, 2
            ),
            "redis_cores": round(figures["redis_cpu_s"] / elapsed, 3),
            "redis_cpu_ms_per_stream_second": round(
                1000 * figures["redis_cpu_s"] / stream_seconds, 4
            ),
            "redis_memory_mib": round(figures["redis_memory"] / 2**20, 1),
            "redis_memory_per_stream_kib": round(
                (figures["redis_memory"] - idle_redis) / streams / 1024, 1
            ),
            "segmenter_cores": round(figures["segmenter_cpu_s"] / elapsed, 3),
            "load_generator_cores": round(figures["client_cpu_s"] / elapsed, 3),
            "machine_cpu_percent": round(figures["machine_percent"], 1),
            "redis_calls_per_stream_second": {
                name: round(calls / stream_seconds, 2)
                for name, calls in sorted(figures["redis_calls"].items(), key=lambda kv: -kv[1])
            },
        },
    }
