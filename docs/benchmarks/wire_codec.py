"""Encode and decode of the hot-path wire messages, this tree against an earlier commit (JSON out).

    .venv/bin/python docs/benchmarks/wire_codec.py --before 4172538 [--seconds 1.0]

``shared/schema.py`` of ``--before`` is read from git and loaded beside the current one, so
both run in one process, one after the other, on the same messages: an audio entry (one 20 ms
frame at 16 kHz, what ingest appends per frame), a final job (3 s of audio), a final with 12
words and a partial (pub/sub events, what ingest decodes for every client). Reports
microseconds per encode and per decode and the ratio after over before.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import shared.schema as current


def _load_before(commit: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:shared/schema.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "schema_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("schema_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["schema_before"] = module
    spec.loader.exec_module(module)
    return module


def _per_call_us(work: Callable[[], object], seconds: float) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            work()
        calls += 100
    return round(elapsed / calls * 1e6, 3)


def _cases(schema: Any) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """Per message: (encode, decode) closures over one prepared message."""
    words = tuple(schema.Word(f"word{i}", i * 0.3, i * 0.3 + 0.25, 0.9) for i in range(12))
    result = schema.TranscriptResult(
        "s1", 7, 0, " ".join(w.word for w in words), 1.5, 5.1, "en", 1.0, words, 10.0, 10.4
    )
    commit = schema.Commit(7, 1, 100.0, 100.3)
    final = schema.FinalTranscript(result, commit)
    partial = schema.PartialTranscript(result)
    audio = schema.AudioAppended(bytes(640), 123.456)
    job = schema.TranscriptionJob(
        schema.JobKind.FINAL, "s1", 7, 0, 0, 16000, bytes(96000), None, 0.8, 100.0, 100.2
    )

    def as_fields(encoded: dict[str, bytes]) -> dict[bytes, bytes]:
        return {k.encode(): v for k, v in encoded.items()}

    audio_fields, job_fields = as_fields(audio.encode()), as_fields(job.encode())
    final_json, partial_json = final.encode(), partial.encode()
    return {
        "audio_entry": (audio.encode, lambda: schema.decode_audio_entry(audio_fields)),
        "final_job": (job.encode, lambda: schema.TranscriptionJob.decode(job_fields)),
        "final_event": (final.encode, lambda: schema.decode_event(final_json)),
        "partial_event": (partial.encode, lambda: schema.decode_event(partial_json)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="commit to compare against")
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    before = _cases(_load_before(args.before))
    after = _cases(current)
    report: dict[str, Any] = {"before": args.before, "seconds_per_measurement": args.seconds}
    for name in before:
        row: dict[str, float] = {}
        for step, index in (("encode", 0), ("decode", 1)):
            old = _per_call_us(before[name][index], args.seconds)
            new = _per_call_us(after[name][index], args.seconds)
            row |= {f"{step}_us_before": old, f"{step}_us_after": new}
            row[f"{step}_ratio"] = round(new / old, 3)
        report[name] = row
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
