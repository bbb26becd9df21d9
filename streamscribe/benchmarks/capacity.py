"""``streamscribe bench --find-capacity``: the most real-time streams a pipeline carries.

For each batch size, and each variant of the settings (``--variant``: before and after a change,
in one run), a fresh local pipeline is started; concurrency is raised level by level.
At each level every stream plays manifest recordings back to back, one session each, at real
time for ``window_s``. A level is sustained when the p95 final latency (end of an utterance's
speech to its final being sent, as the ingest node measures it) stays within the bound, the
oldest waiting final job never gets older than the bound, and every session ends normally.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pydantic
import redis
from prometheus_client.parser import text_string_to_metric_families

from shared import keys
from shared.errors import ConfigError
from shared.observability import live_parts
from shared.redis_client import queue_stats
from shared.settings import ENV_PREFIX, Settings
from streamscribe.benchmarks.bench import cpu_seconds, server_processes, server_timing
from streamscribe.benchmarks.metrics import load_manifest
from streamscribe.client import Audio, StreamRun, read_audio, stream_audio
from streamscribe.launcher import LaunchOptions, LocalPipeline
from streamscribe.redis_server import free_port
from streamscribe.statistics import percentile, rounded

DEFAULT_LEVELS = (1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


@dataclass(frozen=True, slots=True)
class CapacityOptions:
    manifest: str
    batch_sizes: tuple[int, ...]
    latency_bound_s: float = 2.0
    window_s: float = 40.0
    levels: tuple[int, ...] = DEFAULT_LEVELS
    transcribers: int = 2
    output: str = "bench-results/capacity.json"
    limit: int | None = None
    variants: tuple[Variant, ...] = ()
    """Settings to search under, one search each (none: the settings as they are)."""


@dataclass(frozen=True, slots=True)
class Variant:
    """Settings a search's pipeline is started with: ``STREAMSCRIBE_`` variables."""

    env: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.env) or "as configured"


def parse_variant(text: str) -> Variant:
    """``partial_model_share=1.0,batch_size=2``: settings by their names (or their
    ``STREAMSCRIBE_`` variables), each checked as the parts would check it."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = item.partition("=")
        field_name = name.strip().lower().removeprefix(ENV_PREFIX.lower())
        if not equals or field_name not in Settings.model_fields:
            raise ConfigError(f"--variant {text!r}: {name.strip()!r} is not a setting (NAME=VALUE)")
        if field_name == "batch_size":
            raise ConfigError(f"--variant {text!r}: give batch sizes with --batch-sizes")
        try:
            Settings.model_validate({field_name: value.strip()})
        except pydantic.ValidationError as error:
            raise ConfigError(f"--variant {text!r}: {error.errors()[0]['msg']}") from None
        pairs.append((ENV_PREFIX + field_name.upper(), value.strip()))
    if not pairs:
        raise ConfigError("--variant needs NAME=VALUE settings")
    return Variant(tuple(pairs))


@dataclass
class LevelResult:
    streams: int
    sessions: int
    finals: int
    utterances_per_s: float
    final_latency_p50_s: float | None
    final_latency_p95_s: float | None
    oldest_final_job_s: float
    abnormal_closes: int
    cpu_cores_busy: float
    gpu_util_percent: float | None
    sustained: bool
    why_not: str = ""
    model_cores_by_kind: dict[str, float] = field(default_factory=dict)
    """Model seconds per second of the level, by job kind, over every transcriber: where the
    CPU (or GPU) goes."""


@dataclass
class BatchSizeResult:
    batch_size: int
    variant: str = "as configured"
    capacity_streams: int = 0
    utterances_per_s_at_capacity: float = 0.0
    peak_utterances_per_s: float = 0.0
    levels: list[LevelResult] = field(default_factory=list)


class _QueueWatch:
    """Samples the final queue's oldest job age once a second while a level runs."""

    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self.worst_age_s = 0.0

    async def run(self) -> None:
        while True:
            stats = await asyncio.to_thread(
                queue_stats, self._redis, keys.FINAL_JOBS_STREAM, now=time.time()
            )
            self.worst_age_s = max(self.worst_age_s, stats.oldest_age_s)
            await asyncio.sleep(1.0)  # a measurement interval, not work polling


def _gpu_utilization() -> float | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    values = [float(v) for v in done.stdout.split() if v.replace(".", "").isdigit()]
    return sum(values) / len(values) if values else None


async def _gpu_watch(readings: list[float]) -> None:
    while True:
        value = await asyncio.to_thread(_gpu_utilization)
        if value is None:
            return
        readings.append(value)
        await asyncio.sleep(1.0)


async def _run_level(
    url: str,
    redis_url: str,
    audio: list[Audio],
    *,
    streams: int,
    options: CapacityOptions,
    processes: list[psutil.Process],
) -> LevelResult:
    runs: list[StreamRun] = []
    stop_at = time.monotonic() + options.window_s

    async def speaker(number: int) -> None:
        index = number
        while time.monotonic() < stop_at:
            runs.append(
                await stream_audio(url, audio[index % len(audio)], speed=1.0, tail_silence_s=1.0)
            )
            index += streams

    model_before = await asyncio.to_thread(model_seconds_by_kind, redis_url)
    watch = _QueueWatch(redis_url)
    gpu: list[float] = []
    watchers = [asyncio.create_task(watch.run()), asyncio.create_task(_gpu_watch(gpu))]
    cpu_before, started = cpu_seconds(processes), time.monotonic()
    await asyncio.gather(*(speaker(n) for n in range(streams)))
    elapsed = time.monotonic() - started
    cpu = (cpu_seconds(processes) - cpu_before) / elapsed
    for task in watchers:
        task.cancel()
    model_after = await asyncio.to_thread(model_seconds_by_kind, redis_url)
    model_cores = {
        kind: round((seconds - model_before.get(kind, 0.0)) / elapsed, 3)
        for kind, seconds in sorted(model_after.items())
    }
    timings = [server_timing(f.message) for run in runs for f in run.finals]
    latencies = [t["endpoint_to_send_s"] for t in timings if "endpoint_to_send_s" in t]
    finals = sum(len(run.finals) for run in runs)
    p95 = percentile(latencies, 95)
    abnormal = sum(run.close_code != 1000 for run in runs)
    why = []
    if p95 is None or p95 > options.latency_bound_s:
        why.append(f"p95 final latency {p95} s over {options.latency_bound_s} s")
    if watch.worst_age_s > options.latency_bound_s:
        why.append(f"finals fell behind: a job waited {watch.worst_age_s:.1f} s")
    if abnormal:
        why.append(f"{abnormal} sessions did not end normally")
    return LevelResult(
        streams=streams,
        sessions=len(runs),
        finals=finals,
        utterances_per_s=round(finals / elapsed, 3),
        final_latency_p50_s=rounded(percentile(latencies, 50)),
        final_latency_p95_s=rounded(p95),
        oldest_final_job_s=round(watch.worst_age_s, 3),
        abnormal_closes=abnormal,
        cpu_cores_busy=round(cpu, 2),
        gpu_util_percent=round(sum(gpu) / len(gpu), 1) if gpu else None,
        sustained=not why,
        why_not="; ".join(why),
        model_cores_by_kind=model_cores,
    )


def model_seconds_by_kind(redis_url: str) -> dict[str, float]:
    """Every live transcriber's ``streamscribe_model_seconds_total``, summed by job kind."""
    client = redis.Redis.from_url(redis_url)
    try:
        parts = live_parts(client)
    finally:
        client.close()
    totals: dict[str, float] = {}
    for part in parts:
        if part.kind != "transcriber":
            continue
        with urllib.request.urlopen(part.metrics_url, timeout=5) as reply:
            page = reply.read().decode()
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                if sample.name == "streamscribe_model_seconds_total":
                    kind = sample.labels["kind"]
                    totals[kind] = totals.get(kind, 0.0) + sample.value
    return totals


def _search(
    options: CapacityOptions, batch_size: int, variant: Variant, audio: list[Audio]
) -> BatchSizeResult:
    result = BatchSizeResult(batch_size, variant.name)
    pipeline = LocalPipeline(
        LaunchOptions(
            "127.0.0.1",
            free_port(),
            options.transcribers,
            "",
            env=(("STREAMSCRIBE_BATCH_SIZE", str(batch_size)), *variant.env),
        )
    )
    pipeline.start()
    try:
        processes = server_processes(pipeline.pids)
        for streams in options.levels:
            level = asyncio.run(
                _run_level(
                    pipeline.url,
                    pipeline.redis_url,
                    audio,
                    streams=streams,
                    options=options,
                    processes=processes,
                )
            )
            result.levels.append(level)
            result.peak_utterances_per_s = max(result.peak_utterances_per_s, level.utterances_per_s)
            verdict = "sustained" if level.sustained else f"NOT sustained ({level.why_not})"
            print(
                f"  {variant.name}, batch {batch_size}, {streams:3d} streams: "
                f"p95 {level.final_latency_p95_s} s, "
                f"{level.utterances_per_s:.2f} utt/s, oldest job {level.oldest_final_job_s} s, "
                f"cpu {level.cpu_cores_busy} cores: {verdict}",
                file=sys.stderr,
                flush=True,
            )
            if not level.sustained:
                break
            result.capacity_streams = streams
            result.utterances_per_s_at_capacity = level.utterances_per_s
    finally:
        pipeline.stop()
    return result


def find_capacity(options: CapacityOptions, model: str, device: str) -> dict[str, Any]:
    entries = load_manifest(options.manifest, options.limit)
    audio = [read_audio(e.audio) for e in entries]
    results = []
    for variant in options.variants or (Variant(()),):
        for batch_size in options.batch_sizes:
            print(f"{variant.name}, batch size {batch_size}:", file=sys.stderr, flush=True)
            results.append(_search(options, batch_size, variant, audio))
    report: dict[str, Any] = {
        "manifest": str(Path(options.manifest).resolve()),
        "model": model,
        "device": device,
        "cpu_count": psutil.cpu_count(),
        "transcribers": options.transcribers,
        "latency_bound_s": options.latency_bound_s,
        "window_s": options.window_s,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": [asdict(r) for r in results],
    }
    if len(results) >= 2:
        first, last = results[0], results[-1]
        report["comparison"] = {
            "batch_sizes": [first.batch_size, last.batch_size],
            "variants": [first.variant, last.variant],
            "capacity_ratio": _ratio(last.capacity_streams, first.capacity_streams),
            "utterances_per_s_ratio_at_capacity": _ratio(
                last.utterances_per_s_at_capacity, first.utterances_per_s_at_capacity
            ),
            "peak_utterances_per_s_ratio": _ratio(
                last.peak_utterances_per_s, first.peak_utterances_per_s
            ),
        }
    for r in results:
        print(
            f"{r.variant}, batch size {r.batch_size}: "
            f"{r.capacity_streams} real-time streams sustained "
            f"(p95 <= {options.latency_bound_s} s), {r.utterances_per_s_at_capacity} utt/s there, "
            f"peak {r.peak_utterances_per_s} utt/s"
        )
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return report


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None
