"""``bench-ingest`` end to end on a few streams: real Redis, ingest and segmenter processes."""

from __future__ import annotations

import json
from pathlib import Path

from streamscribe.benchmarks.ingest_capacity import IngestCapacityOptions, run_ingest_capacity
from tests.conftest import DATA


def test_a_small_run_measures_ingest_and_redis_per_stream(tmp_path: Path) -> None:
    output = tmp_path / "ingest.json"
    options = IngestCapacityOptions(
        recording=str(DATA / "ls-test-clean-1089-134686-0000.wav"),
        streams=6,
        window_s=3.0,
        opens_per_s=20.0,
        output=str(output),
    )
    report = run_ingest_capacity(options)
    assert json.loads(output.read_text()) == report
    results = report["results"]
    assert results["streams_open"] == 6
    assert results["streams_refused_or_failed"] == results["streams_closed_by_server"] == 0
    # 6 streams of 100 ms frames for at least the window (and the 5 s before it)
    assert results["frames_sent"] >= 6 * 10 * 8 * 0.9
    assert results["ingest_core_per_stream"] > 0
    assert results["redis_commands_per_stream_second"] >= 10  # an append per frame at least
    assert results["redis_cpu_ms_per_stream_second"] > 0
    assert results["segmenter_cores"] > 0
