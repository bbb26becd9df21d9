"""``streamscribe soak``: one long session of continuous read speech at real time.

The manifest's read-speech recordings (single utterances and long-form, with text) are joined
end to end, a short pause between them, repeated until the session lasts ``--minutes``, and
streamed into a running pipeline (``--url``) or a fresh local one. Every ``--sample-every``
seconds the soak records the memory of each part and of Redis; afterwards it reports, minute
by minute of the stream, the finals and turns that came and their latency, so that creeping
latency, growing memory or a transcript that stops settling show as trends. JSON out.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import redis
import soxr

from shared.audio import PIPELINE_SAMPLE_RATE
from shared.settings import Settings
from streamscribe.benchmarks.metrics import (
    ManifestEntry,
    corpus_wer,
    group_of,
    load_manifest,
)
from streamscribe.client import Audio, StreamRun, read_audio, stream_audio
from streamscribe.launcher import LaunchOptions, LocalPipeline
from streamscribe.redis_server import free_port
from streamscribe.statistics import percentile, rounded

READ_SPEECH_GROUPS = ("single", "long-form")


@dataclass(frozen=True, slots=True)
class SoakOptions:
    manifest: str
    minutes: float
    url: str | None
    redis_url: str | None
    """Of the pipeline at ``url`` (for Redis's memory); a local pipeline knows its own."""
    transcribers: int
    output: str
    gap_s: float = 0.6
    sample_every_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Program:
    """The soak's audio and what was said in it."""

    audio: Audio
    reference: str
    recordings: int


def continuous_speech(entries: Sequence[ManifestEntry], seconds: float, gap_s: float) -> Program:
    """Read-speech recordings end to end (``gap_s`` of silence between), repeated to fill
    ``seconds``."""
    pieces: list[np.ndarray] = []
    texts: list[str] = []
    readable = [e for e in entries if e.text and group_of(e.id) in READ_SPEECH_GROUPS]
    if not readable:
        raise ValueError("the manifest has no read speech with reference text")
    gap = np.zeros(int(gap_s * PIPELINE_SAMPLE_RATE), np.int16)
    total = 0
    while total < seconds * PIPELINE_SAMPLE_RATE:
        for entry in readable:
            audio = read_audio(entry.audio)
            samples = np.frombuffer(audio.pcm, "<i2")
            if audio.sample_rate != PIPELINE_SAMPLE_RATE:
                floats = soxr.resample(
                    samples.astype(np.float32) / 32768, audio.sample_rate, PIPELINE_SAMPLE_RATE
                )
                samples = (np.clip(floats, -1, 1) * 32767).astype(np.int16)
            pieces += [samples, gap]
            texts.append(entry.text)
            total += samples.size + gap.size
            if total >= seconds * PIPELINE_SAMPLE_RATE:
                break
    pcm = np.concatenate(pieces).astype("<i2").tobytes()
    return Program(Audio(pcm, PIPELINE_SAMPLE_RATE), " ".join(texts), len(texts))


def _part_name(process: psutil.Process) -> str:
    command = process.cmdline()
    if any("redis-server" in part for part in command):
        return "redis-server"
    return f"{command[-1]}-{process.pid}"


def memory_sample(
    pids: Sequence[int], client: redis.Redis | None, started: float
) -> dict[str, Any]:
    rss = {}
    for pid in pids:
        try:
            process = psutil.Process(pid)
            rss[_part_name(process)] = round(process.memory_info().rss / 2**20, 1)
        except psutil.NoSuchProcess:
            continue
    sample: dict[str, Any] = {"at_s": round(time.time() - started, 1), "rss_mib": rss}
    if client is not None:
        info: Any = client.info("memory")
        sample["redis_used_mib"] = round(info["used_memory"] / 2**20, 2)
    return sample


def by_minute(run: StreamRun) -> list[dict[str, Any]]:
    """Finals and turns per minute of the stream, with their latency from the end of speech."""

    ends = [("final", f.at, f.message.end) for f in run.finals]
    ends += [("turn", t.at, t.message.end) for t in run.turns]
    rows: dict[int, dict[str, list[float]]] = {}
    for kind, at, end in ends:
        latency = at - (run.started_at + end)
        rows.setdefault(int(end // 60), {"final": [], "turn": []})[kind].append(latency)
    return [
        {
            "minute": minute,
            "finals": len(row["final"]),
            "final_p50_s": rounded(percentile(row["final"], 50)),
            "final_p95_s": rounded(percentile(row["final"], 95)),
            "turns": len(row["turn"]),
            "turn_p95_s": rounded(percentile(row["turn"], 95)),
        }
        for minute, row in sorted(rows.items())
    ]


def trends(minutes: list[dict[str, Any]], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """First five minutes against the last five; memory after the first sample against the
    end (the first minutes warm caches and pools)."""

    def p95(rows: list[dict[str, Any]]) -> float | None:
        values = [r["final_p95_s"] for r in rows if r["final_p95_s"] is not None]
        return rounded(float(np.median(values))) if values else None

    early, late = p95(minutes[:5]), p95(minutes[-5:])
    growth = {}
    if len(samples) >= 3:
        first, last = samples[1]["rss_mib"], samples[-1]["rss_mib"]
        growth = {name: round(last[name] - first[name], 1) for name in first if name in last}
    out: dict[str, Any] = {
        "final_p95_first_5_min_s": early,
        "final_p95_last_5_min_s": late,
        "final_p95_last_over_first": rounded(late / early) if early and late else None,
        "rss_growth_mib_after_warmup": growth,
        "minutes_without_a_turn": [r["minute"] for r in minutes if r["finals"] and not r["turns"]],
    }
    if len(samples) >= 3 and "redis_used_mib" in samples[-1]:
        out["redis_growth_mib_after_warmup"] = round(
            samples[-1]["redis_used_mib"] - samples[1]["redis_used_mib"], 2
        )
    return out


async def _soak(
    url: str, program: Program, pids: Sequence[int], client: redis.Redis | None, every_s: float
) -> tuple[StreamRun, list[dict[str, Any]]]:
    started = time.time()
    samples = [memory_sample(pids, client, started)]

    async def sample() -> None:
        while True:
            await asyncio.sleep(every_s)
            samples.append(memory_sample(pids, client, started))

    sampler = asyncio.create_task(sample())
    try:
        run = await stream_audio(url, program.audio, speed=1.0, tail_silence_s=3.0)
    finally:
        sampler.cancel()
    samples.append(memory_sample(pids, client, started))
    return run, samples


def run_soak(options: SoakOptions, settings: Settings) -> int:
    program = continuous_speech(
        load_manifest(options.manifest), options.minutes * 60, options.gap_s
    )
    seconds = len(program.audio.pcm) / 2 / PIPELINE_SAMPLE_RATE
    print(
        f"soak: {program.recordings} recordings, {seconds / 60:.1f} min at real time",
        file=sys.stderr,
        flush=True,
    )
    pipeline: LocalPipeline | None = None
    url, redis_url = options.url, options.redis_url
    try:
        if url is None:
            launch = LaunchOptions(
                "127.0.0.1", free_port(), options.transcribers, settings.redis_url
            )
            pipeline = LocalPipeline(launch)
            pipeline.start()
            url, redis_url = pipeline.url, pipeline.redis_url
        pids = pipeline.pids if pipeline is not None else []
        client = redis.Redis.from_url(redis_url) if redis_url else None
        run, samples = asyncio.run(_soak(url, program, pids, client, options.sample_every_s))
    finally:
        if pipeline is not None:
            pipeline.stop()
    minutes = by_minute(run)
    settled = {u for t in run.turns for u in t.message.utterance_ids}
    report = {
        "manifest": str(Path(options.manifest).resolve()),
        "model": settings.model,
        "audio_s": round(seconds, 1),
        "recordings": program.recordings,
        "close_code": run.close_code,
        "errors": list(run.errors),
        "finals": len(run.finals),
        "turns": len(run.turns),
        "finals_never_settled": sum(f.message.utterance_id not in settled for f in run.finals),
        "settled_wer": rounded(corpus_wer([program.reference], [run.transcript])),
        "fast_final_wer": rounded(corpus_wer([program.reference], [run.fast_transcript])),
        "trends": trends(minutes, samples),
        "minutes": minutes,
        "memory": samples,
    }
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in list(report)[:12]}, indent=2), file=sys.stderr)
    print(f"wrote {output}", file=sys.stderr)
    return 0 if run.close_code == 1000 and not run.errors else 1
