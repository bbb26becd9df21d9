"""``streamscribe bench``: accuracy and latency of the running pipeline on a manifest.

Streams every entry at real-time pace (``--speed``) at each concurrency, then ``tail`` seconds
of silence (so utterances end by voice activity, as they do live), then ``close``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soxr
from msgspec import UnsetType

from shared.audio import PIPELINE_SAMPLE_RATE
from shared.client_messages import Transcript
from shared.errors import ConfigError
from shared.settings import Settings
from streamscribe.benchmarks.faces import stream_deepgram
from streamscribe.benchmarks.grpc_face import stream_grpc
from streamscribe.benchmarks.metrics import (
    ManifestEntry,
    corpus_wer,
    cuts_repeating,
    group_of,
    load_manifest,
    normalize,
    run_each,
)
from streamscribe.benchmarks.paired import paired_delays, recordings_at_once, stream_paired
from streamscribe.benchmarks.realtime_face import stream_realtime
from streamscribe.client import Audio, StreamRun, read_audio, stream_audio
from streamscribe.launcher import LaunchOptions, LocalPipeline
from streamscribe.options import model_options
from streamscribe.redis_server import free_port
from streamscribe.statistics import percentile, rounded
from transcriber.model import Scope, SpeechModel


@dataclass(frozen=True, slots=True)
class BenchOptions:
    manifest: str
    url: str | None
    concurrencies: tuple[int, ...]
    speed: float
    tail_silence_s: float
    output: str
    offline: bool
    limit: int | None
    transcribers: int
    faces: tuple[str, ...] = ("v1",)
    """Protocols to stream through (``streamscribe.benchmarks.faces``), in one run."""
    grpc_url: str | None = None
    """The gRPC API of the server at ``url`` (``grpc://host:port``), for the ``grpc`` face."""
    paired: bool = False
    """Each recording through every face at once (``streamscribe.benchmarks.paired``)."""


@dataclass(frozen=True, slots=True)
class StreamResult:
    entry: ManifestEntry
    run: StreamRun
    speed: float

    @property
    def last_final_latency(self) -> float | None:
        """Arrival of the last final minus the moment the file's last sample was sent."""
        finals = self.run.finals
        if not finals or not self.run.audio_end_sent_at:
            return None
        return finals[-1].at - self.run.audio_end_sent_at

    def end_of_speech_latencies(self) -> list[float]:
        """Per final: arrival minus when the audio at its ``end`` was sent."""
        return [f.at - (self.run.started_at + f.message.end / self.speed) for f in self.run.finals]

    def turn_latencies(self) -> list[float]:
        """Per turn: arrival minus when the audio at its ``end`` was sent."""
        return [t.at - (self.run.started_at + t.message.end / self.speed) for t in self.run.turns]

    def first_partial_latencies(self) -> list[float]:
        """Per final that had partials: first partial's arrival minus when its first word's
        audio was sent (how long a speaker waits to see words appear)."""
        first_partial: dict[str, float] = {}
        for p in self.run.partials:
            first_partial.setdefault(p.message.utterance_id, p.at)
        return [
            first_partial[f.message.utterance_id]
            - (self.run.started_at + f.message.start / self.speed)
            for f in self.run.finals
            if f.message.utterance_id in first_partial
        ]


def server_timing(final: Transcript) -> Mapping[str, float]:
    """What the server measured of a final (empty where it sent none)."""
    timing = final.server_timing
    return {} if isinstance(timing, UnsetType) else timing


def server_processes(pids: list[int] | None) -> list[psutil.Process]:
    if pids is not None:
        return [psutil.Process(pid) for pid in pids]
    parts = {"ingest", "segmenter", "transcriber"}
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any("streamscribe" in a for a in cmdline) and parts & set(cmdline):
            found.append(process)
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


STREAMERS = {
    "v1": stream_audio,
    "deepgram": stream_deepgram,
    "realtime": stream_realtime,
    "grpc": stream_grpc,
}
UNTIMED_FINALS = frozenset({"realtime"})
"""Faces whose finals carry no times (OpenAI's deltas): their final latency is not known,
their turns' (items') is."""


async def stream_all(
    url: str,
    entries: list[ManifestEntry],
    audio: dict[str, Audio],
    *,
    concurrency: int,
    speed: float,
    tail_silence_s: float,
    face: str = "v1",
) -> list[StreamResult]:
    results: list[StreamResult] = []
    stream = STREAMERS[face]

    async def each(entry: ManifestEntry) -> None:
        run = await stream(url, audio[entry.id], speed=speed, tail_silence_s=tail_silence_s)
        results.append(StreamResult(entry, run, speed))
        print(
            f"  {entry.id}: {len(run.finals)} finals, close {run.close_code}",
            file=sys.stderr,
            flush=True,
        )

    await run_each(entries, concurrency, each)
    return results


def _wer_of(results: list[StreamResult], text: Callable[[StreamResult], str]) -> float | None:
    scored = [r for r in results if r.entry.text]
    if not scored:
        return None
    return round(corpus_wer([r.entry.text for r in scored], [text(r) for r in scored]), 4)


def _groups(
    results: list[StreamResult], offline: Mapping[str, str] | None
) -> dict[str, dict[str, float | None]]:
    grouped: dict[str, list[StreamResult]] = {}
    for r in results:
        grouped.setdefault(group_of(r.entry.id), []).append(r)
    out = {}
    for name, subset in sorted(grouped.items()):
        row = {
            "settled_wer": _wer_of(subset, lambda r: r.run.transcript),
            "fast_final_wer": _wer_of(subset, lambda r: r.run.fast_transcript),
        }
        if offline is not None:
            row["offline_wer"] = _wer_of(subset, lambda r: offline.get(r.entry.id, ""))
        out[name] = row
    return out


def _cut_repeats(results: list[StreamResult]) -> dict[str, Any]:
    """Words said once (by the reference) that come twice across a cut, and where."""
    found: dict[str, list[str]] = {"fast_finals": [], "turns": []}
    for r in results:
        reference = normalize(r.entry.text)
        pieces = {
            "fast_finals": [f.message.text for f in r.run.finals],
            "turns": [t.message.text for t in r.run.turns],
        }
        for kind, texts in pieces.items():
            found[kind] += [f"{r.entry.id}: {cut}" for cut in cuts_repeating(texts, reference)]
    return {
        "fast_finals": len(found["fast_finals"]),
        "turns": len(found["turns"]),
        "where": found,
    }


def summarize(
    results: list[StreamResult], cpu_s: float, offline: Mapping[str, str] | None = None
) -> dict[str, Any]:
    latencies = [x for r in results if (x := r.last_final_latency) is not None]
    eos = [x for r in results for x in r.end_of_speech_latencies()]
    turn_latency = [x for r in results for x in r.turn_latencies()]
    partial_latency = [x for r in results for x in r.first_partial_latencies()]
    timings = [server_timing(f.message) for r in results for f in r.run.finals]
    overhead = [float(t["overhead_s"]) for t in timings if "overhead_s" in t]
    model = [float(t["model_s"]) for t in timings if "model_s" in t]
    audio_s = sum(r.entry.seconds for r in results)
    return {
        "streams": len(results),
        "audio_seconds": round(audio_s, 2),
        "wer": _wer_of(results, lambda r: r.run.transcript),
        "fast_final_wer": _wer_of(results, lambda r: r.run.fast_transcript),
        "final_latency_p50_s": rounded(percentile(eos, 50)),
        "final_latency_p95_s": rounded(percentile(eos, 95)),
        "turn_latency_p50_s": rounded(percentile(turn_latency, 50)),
        "turn_latency_p95_s": rounded(percentile(turn_latency, 95)),
        "last_final_after_audio_end_p50_s": rounded(percentile(latencies, 50)),
        "last_final_after_audio_end_p95_s": rounded(percentile(latencies, 95)),
        "first_partial_latency_p50_s": rounded(percentile(partial_latency, 50)),
        "first_partial_latency_p95_s": rounded(percentile(partial_latency, 95)),
        "pipeline_overhead_p50_s": rounded(percentile(overhead, 50)),
        "pipeline_overhead_p95_s": rounded(percentile(overhead, 95)),
        "model_time_per_final_p50_s": rounded(percentile(model, 50)),
        "server_cpu_s_per_audio_s": rounded(cpu_s / audio_s if audio_s else None),
        "errors": sum(len(r.run.errors) for r in results),
        "abnormal_closes": sum(r.run.close_code != 1000 for r in results),
        "finals": sum(len(r.run.finals) for r in results),
        "turns": sum(len(r.run.turns) for r in results),
        "repeated_across_cuts": _cut_repeats(results),
        "groups": _groups(results, offline),
        "nonspeech_text": {r.entry.id: r.run.transcript for r in results if not r.entry.text},
        "transcripts": {r.entry.id: r.run.transcript for r in results},
        "fast_transcripts": {r.entry.id: r.run.fast_transcript for r in results},
    }


def offline_transcript(model: SpeechModel, path: str | Path) -> str:
    """faster-whisper on the whole file, as a user would run it offline: the ceiling."""
    audio = read_audio(path)
    samples = np.frombuffer(audio.pcm, "<i2").astype(np.float32) / 32768
    if audio.sample_rate != PIPELINE_SAMPLE_RATE:
        samples = soxr.resample(samples, audio.sample_rate, PIPELINE_SAMPLE_RATE)
    return model.transcribe_array(
        samples, None, final=True, language_guard=False, scope=Scope.RECORDING
    ).text


def offline_ceiling(entries: list[ManifestEntry], settings: Settings) -> dict[str, Any]:
    """The same model and settings on each whole file: the accuracy streaming should reach."""
    model = SpeechModel(model_options(settings))
    started = time.perf_counter()
    hypotheses = [offline_transcript(model, entry.audio) for entry in entries]
    scored = [(e.text, h) for e, h in zip(entries, hypotheses, strict=True) if e.text]
    return {
        "wer": round(corpus_wer([r for r, _ in scored], [h for _, h in scored]), 4),
        "model_seconds": round(time.perf_counter() - started, 2),
        "transcripts": {e.id: h for e, h in zip(entries, hypotheses, strict=True)},
    }


def run_bench(options: BenchOptions, settings: Settings) -> int:
    entries = load_manifest(options.manifest, options.limit)
    audio = {e.id: read_audio(e.audio) for e in entries}
    report: dict[str, Any] = {
        "manifest": str(Path(options.manifest).resolve()),
        "model": settings.model,
        "compute": {"device": settings.device, "compute_type": settings.compute_type},
        "speed": options.speed,
        "tail_silence_s": options.tail_silence_s,
        "cpu_count": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if options.offline:
        print("offline ceiling ...", file=sys.stderr, flush=True)
        report["offline"] = offline_ceiling(entries, settings)
    pipeline: LocalPipeline | None = None
    url, grpc_url = options.url, options.grpc_url
    if url is not None and "grpc" in options.faces and grpc_url is None:
        raise ConfigError("--faces grpc with --url needs the server's --grpc-url")
    try:
        if url is None:
            launch = LaunchOptions(
                "127.0.0.1", free_port(), options.transcribers, settings.redis_url
            )
            grpc_port = free_port()
            pipeline = LocalPipeline(dataclasses.replace(launch, grpc_port=grpc_port))
            pipeline.start()
            url, grpc_url = pipeline.url, f"grpc://127.0.0.1:{grpc_port}"
            report["transcribers"] = options.transcribers
        processes = server_processes(pipeline.pids if pipeline else None)
        # not measured: the first session pays for every part's first inference
        asyncio.run(stream_audio(url, audio[entries[0].id], speed=options.speed))
        if options.paired:
            report.update(
                _paired_runs(
                    options, entries, audio, url=url, grpc_url=grpc_url, processes=processes
                )
            )
            return _write(report, options.output)
        by_face: dict[str, dict[str, Any]] = {}
        for face in options.faces:
            by_face[face] = {}
            for concurrency in options.concurrencies:
                print(f"{face}, concurrency {concurrency} ...", file=sys.stderr, flush=True)
                before = cpu_seconds(processes)
                results = asyncio.run(
                    stream_all(
                        grpc_url if face == "grpc" and grpc_url else url,
                        entries,
                        audio,
                        concurrency=concurrency,
                        speed=options.speed,
                        tail_silence_s=options.tail_silence_s,
                        face=face,
                    )
                )
                offline = report["offline"]["transcripts"] if "offline" in report else None
                summary = summarize(results, cpu_seconds(processes) - before, offline)
                if face in UNTIMED_FINALS:
                    summary["final_latency_p50_s"] = summary["final_latency_p95_s"] = None
                by_face[face][str(concurrency)] = summary
        report["runs"] = by_face[options.faces[0]]
        if len(options.faces) > 1:
            report["faces"] = by_face
            report["face_comparison"] = compare_faces(by_face, options.faces[0])
    finally:
        if pipeline is not None:
            pipeline.stop()
    return _write(report, options.output)


def _write(report: dict[str, Any], path: str) -> int:
    _print_table(report)
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return 0


def _paired_runs(
    options: BenchOptions,
    entries: list[ManifestEntry],
    audio: dict[str, Audio],
    *,
    url: str,
    grpc_url: str | None,
    processes: list[psutil.Process],
) -> dict[str, Any]:
    """Every face at once per recording, at each concurrency (streams in all)."""
    streamers = {
        face: (STREAMERS[face], grpc_url if face == "grpc" and grpc_url else url)
        for face in options.faces
    }
    base = options.faces[0]
    by_face: dict[str, dict[str, Any]] = {face: {} for face in options.faces}
    paired: dict[str, Any] = {}
    for concurrency in options.concurrencies:
        print(f"paired, {concurrency} streams ...", file=sys.stderr, flush=True)
        before = cpu_seconds(processes)
        results = asyncio.run(
            stream_paired(
                streamers,
                entries,
                audio,
                concurrency=concurrency,
                speed=options.speed,
                tail_silence_s=options.tail_silence_s,
            )
        )
        cpu_s = cpu_seconds(processes) - before
        for face in options.faces:
            runs = [StreamResult(r.entry, r.runs[face], options.speed) for r in results]
            summary = summarize(runs, cpu_s)
            summary["server_cpu_s_per_audio_s"] = None  # shared by the faces: see "paired"
            if face in UNTIMED_FINALS:
                summary["final_latency_p50_s"] = summary["final_latency_p95_s"] = None
            by_face[face][str(concurrency)] = summary
        audio_s = sum(r.entry.seconds for r in results) * len(options.faces)
        paired[str(concurrency)] = {
            "streams_at_once": recordings_at_once(concurrency, len(streamers)) * len(streamers),
            "server_cpu_s_per_audio_s": rounded(cpu_s / audio_s if audio_s else None),
            **paired_delays(results, base),
        }
    return {
        "paired": paired,
        "runs": by_face[base],
        "faces": by_face,
        "face_comparison": compare_faces(by_face, base),
    }


COMPARED = (
    "fast_final_wer", "wer", "final_latency_p50_s", "final_latency_p95_s",
    "turn_latency_p50_s", "turn_latency_p95_s",
)  # fmt: skip


def compare_faces(by_face: Mapping[str, Mapping[str, Any]], base: str) -> dict[str, Any]:
    """Each face's figures minus ``base``'s, per concurrency (WER points, seconds)."""
    compared: dict[str, Any] = {}
    for face, runs in by_face.items():
        if face == base:
            continue
        compared[face] = {
            level: {
                f"{name}_minus_{base}": rounded(summary[name] - by_face[base][level][name])
                for name in COMPARED
                if summary.get(name) is not None and by_face[base][level].get(name) is not None
            }
            for level, summary in runs.items()
        }
    return compared


def _print_table(report: dict[str, Any]) -> None:
    if "offline" in report:
        print(f"offline ceiling WER: {report['offline']['wer']:.4f}")
    columns = [
        ("wer", "settled WER"),
        ("fast_final_wer", "fast WER"),
        ("final_latency_p50_s", "final p50"),
        ("final_latency_p95_s", "final p95"),
        ("turn_latency_p50_s", "turn p50"),
        ("turn_latency_p95_s", "turn p95"),
        ("first_partial_latency_p50_s", "partial p50"),
        ("pipeline_overhead_p50_s", "overhead p50"),
        ("server_cpu_s_per_audio_s", "cpu s/s"),
    ]
    print("concurrency " + " ".join(f"{title:>12}" for _, title in columns))
    for face, runs in report.get("faces", {"": report.get("runs", {})}).items():
        for concurrency, run in runs.items():
            cells = []
            for key, _ in columns:
                value = run.get(key)
                cells.append(f"{value:12.4f}" if isinstance(value, float) else f"{value!s:>12}")
            level = f"{face} {concurrency}".strip()
            print(f"{level:>11} " + " ".join(cells))
