"""An uploaded recording while live streams run: the upload's accuracy against offline
faster-whisper on the same file and the time it takes, and the live streams' final latency
with and without it (``streamscribe bench-upload``; JSON out).

The recording is the manifest's files with text, joined with short silences until it is
``minutes`` long (its reference: their texts joined), sent as FLAC through the ``openai``
SDK (a test dependency) as its users send files.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from shared.audio import PIPELINE_SAMPLE_RATE
from shared.settings import Settings
from streamscribe.benchmarks.bench import StreamResult, stream_all, summarize
from streamscribe.benchmarks.metrics import ManifestEntry, corpus_wer, load_manifest
from streamscribe.client import read_audio
from streamscribe.launcher import LaunchOptions, LocalPipeline
from streamscribe.options import model_options
from streamscribe.redis_server import free_port
from streamscribe.statistics import percentile, rounded
from transcriber.model import Scope, SpeechModel

GAP_S = 0.5


@dataclass(frozen=True, slots=True)
class UploadBenchOptions:
    manifest: str
    minutes: float
    concurrency: int
    live_limit: int
    """The first N manifest entries are the live streams (at real time)."""
    transcribers: int
    output: str


@dataclass(frozen=True, slots=True)
class Recording:
    pcm: bytes
    reference: str
    parts: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / PIPELINE_SAMPLE_RATE


def join_recording(entries: list[ManifestEntry], minutes: float) -> Recording:
    """The entries with text, in order (again from the first if need be), each followed by
    ``GAP_S`` of silence, until ``minutes`` long."""
    spoken = [e for e in entries if e.text]
    if not spoken:
        raise ValueError("the manifest has no entry with text")
    gap = bytes(int(GAP_S * PIPELINE_SAMPLE_RATE) * 2)
    pieces: list[bytes] = []
    texts: list[str] = []
    ids: list[str] = []
    total = 0.0
    index = 0
    while total < minutes * 60:
        entry = spoken[index % len(spoken)]
        audio = read_audio(entry.audio)
        if audio.sample_rate != PIPELINE_SAMPLE_RATE:
            raise ValueError(f"{entry.id}: the recording is built of 16 kHz files only")
        pieces += [audio.pcm, gap]
        texts.append(entry.text)
        ids.append(entry.id)
        total += len(audio.pcm) / 2 / PIPELINE_SAMPLE_RATE + GAP_S
        index += 1
    return Recording(b"".join(pieces), " ".join(texts), tuple(ids))


def as_flac(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, "<i2").reshape(1, -1)
    out = io.BytesIO()
    with av.open(out, mode="w", format="flac") as file:
        stream: Any = file.add_stream("flac", rate=PIPELINE_SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = PIPELINE_SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            file.mux(packet)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class UploadRun:
    text: str
    started_at: float
    ended_at: float

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at


def upload(http: str, data: bytes) -> UploadRun:
    from openai import OpenAI

    client = OpenAI(base_url=http + "/v1", api_key="bench", max_retries=0, timeout=3600)
    started = time.time()
    answer = client.audio.transcriptions.create(
        model="whisper-1", file=("recording.flac", data), response_format="text"
    )
    return UploadRun(str(answer).strip(), started, time.time())


def _wait_ready(http: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(http + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("no transcriber became ready")


def _latencies_within(results: list[StreamResult], start: float, end: float) -> list[float]:
    """End-of-speech latencies of the finals that arrived while the upload was running."""
    return [
        f.at - (r.run.started_at + f.message.end / r.speed)
        for r in results
        for f in r.run.finals
        if start <= f.at <= end
    ]


def run_upload_bench(options: UploadBenchOptions, settings: Settings) -> int:
    entries = load_manifest(options.manifest)
    recording = join_recording(entries, options.minutes)
    data = as_flac(recording.pcm)
    live = entries[: options.live_limit]
    audio = {e.id: read_audio(e.audio) for e in live}
    report: dict[str, Any] = {
        "manifest": str(Path(options.manifest).resolve()),
        "model": settings.model,
        "transcribers": options.transcribers,
        "upload_transcribers": settings.upload_transcribers,
        "concurrency": options.concurrency,
        "recording": {
            "seconds": round(recording.seconds, 2),
            "flac_bytes": len(data),
            "parts": len(recording.parts),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"offline faster-whisper on {recording.seconds:.0f} s ...", file=sys.stderr, flush=True)
    model = SpeechModel(model_options(settings))
    began = time.perf_counter()
    samples = np.frombuffer(recording.pcm, "<i2").astype(np.float32) / 32768
    offline = model.transcribe_array(
        samples, None, final=True, language_guard=False, scope=Scope.RECORDING
    ).text
    report["offline"] = {
        "wer": round(corpus_wer([recording.reference], [offline]), 4),
        "seconds": round(time.perf_counter() - began, 2),
    }
    del model
    pipeline = LocalPipeline(
        LaunchOptions(
            "127.0.0.1", free_port(), options.transcribers, settings.redis_url,
            upload_transcribers=settings.upload_transcribers,
        )
    )  # fmt: skip
    pipeline.start()
    http = pipeline.url.replace("ws://", "http://").removesuffix("/v1/stream")
    try:
        _wait_ready(http)
        print("upload alone ...", file=sys.stderr, flush=True)
        alone = upload(http, data)
        print(f"live streams alone (c{options.concurrency}) ...", file=sys.stderr, flush=True)
        live_alone = asyncio.run(_live(pipeline.url, live, audio, options.concurrency))
        print("live streams with the upload ...", file=sys.stderr, flush=True)
        live_with, during = asyncio.run(
            _live_with_upload(
                pipeline.url, http, live=live, audio=audio, data=data, options=options
            )
        )
    finally:
        pipeline.stop()
    report["upload_alone"] = _upload_summary(alone, recording)
    report["upload_with_live"] = _upload_summary(during, recording)
    without = summarize(live_alone, 0.0)
    with_upload = summarize(live_with, 0.0)
    overlapping = _latencies_within(live_with, during.started_at, during.ended_at)
    report["live_alone"] = _live_summary(without)
    report["live_with_upload"] = {
        **_live_summary(with_upload),
        "finals_during_upload": len(overlapping),
        "final_latency_p95_during_upload_s": rounded(percentile(overlapping, 95)),
    }
    base = without["final_latency_p95_s"]
    if base:
        report["live_p95_ratio"] = rounded(with_upload["final_latency_p95_s"] / base)
        during_p95 = percentile(overlapping, 95)
        report["live_p95_during_upload_ratio"] = rounded(during_p95 / base) if during_p95 else None
    report["upload_wer_minus_offline"] = rounded(
        report["upload_with_live"]["wer"] - report["offline"]["wer"]
    )
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "manifest"}, indent=2))
    print(f"wrote {output}", file=sys.stderr)
    return 0


async def _live(
    url: str, live: list[ManifestEntry], audio: dict[str, Any], concurrency: int
) -> list[StreamResult]:
    return await stream_all(
        url, live, audio, concurrency=concurrency, speed=1.0, tail_silence_s=2.0
    )


async def _live_with_upload(
    url: str,
    http: str,
    *,
    live: list[ManifestEntry],
    audio: dict[str, Any],
    data: bytes,
    options: UploadBenchOptions,
) -> tuple[list[StreamResult], UploadRun]:
    streams = asyncio.create_task(_live(url, live, audio, options.concurrency))
    await asyncio.sleep(5)  # the live streams are under way when the upload arrives
    during = await asyncio.to_thread(upload, http, data)
    return await streams, during


def _upload_summary(run: UploadRun, recording: Recording) -> dict[str, Any]:
    return {
        "wer": round(corpus_wer([recording.reference], [run.text]), 4),
        "seconds": round(run.seconds, 2),
        "real_time_factor": rounded(run.seconds / recording.seconds),
    }


LIVE_FIGURES = (
    "streams", "audio_seconds", "wer", "fast_final_wer", "final_latency_p50_s",
    "final_latency_p95_s", "turn_latency_p95_s", "finals", "errors", "abnormal_closes",
)  # fmt: skip


def _live_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in LIVE_FIGURES}
