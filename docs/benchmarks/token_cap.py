"""The bound on tokens per second of audio, before and after in one run: two ``up``s on this
machine, one with ``STREAMSCRIBE_MAX_TOKENS_PER_S=0`` (Whisper's 448 whatever the audio) and
one with the default, each recording streamed at real time to one then the other, in turn,
so both see the same load (JSON out).

    PYTHONPATH=. .venv/bin/python docs/benchmarks/token_cap.py --rounds 3 \
        --output docs/benchmarks/token-cap-tests-data.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, is_ready, start_up, stop_up, wait_until

RECORDINGS = ("long-ljspeech-LJ001-0001-0008", "long-ls-test-other-1688-142285-0000-0009")


async def finals(url: str, audio: Path) -> tuple[list[dict[str, Any]], str]:
    run = await stream_audio(url, read_audio(audio), speed=1.0, params={"partials": "false"})
    timed = [
        {"start": f.message.start, "end": f.message.end, **f.message.server_timing}  # type: ignore[attr-defined]
        for f in run.finals
    ]
    return timed, run.transcript


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    entries = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
    variants = {"unbounded": "0", "bounded_30_per_s": "30"}
    nodes = {
        name: start_up(free_port(), transcribers=1, env={"STREAMSCRIBE_MAX_TOKENS_PER_S": value})
        for name, value in variants.items()
    }
    results: dict[str, Any] = {name: {r: [] for r in RECORDINGS} for name in variants}
    try:
        for node in nodes.values():
            assert wait_until(lambda node=node: is_ready(node), timeout=180)  # type: ignore[misc]
        for _ in range(args.rounds):
            for recording in RECORDINGS:
                for name, node in nodes.items():
                    timed, text = asyncio.run(finals(node.url, entries[recording].audio))
                    results[name][recording].append(
                        {"finals": timed, "wer": corpus_wer([entries[recording].text], [text])}
                    )
    finally:
        for node in nodes.values():
            stop_up(node)
    summary = {}
    for name, by_recording in results.items():
        latencies = [
            f["endpoint_to_send_s"]
            for runs in by_recording.values()
            for r in runs
            for f in r["finals"]
        ]
        model = [f["model_s"] for runs in by_recording.values() for r in runs for f in r["finals"]]
        summary[name] = {
            "finals": len(latencies),
            "final_latency_p50_s": round(statistics.median(latencies), 4),
            "final_latency_max_s": round(max(latencies), 4),
            "model_s_total": round(sum(model), 3),
            "wer_by_recording": {
                r: [round(x["wer"], 4) for x in runs] for r, runs in by_recording.items()
            },
        }
    out = {
        "machine": "2 cores; two up's of 1 transcriber each, tiny.en int8, streams in turn",
        "recordings": RECORDINGS,
        "rounds": args.rounds,
        "summary": summary,
        "runs": results,
    }
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
