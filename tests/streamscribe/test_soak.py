"""The soak's pure parts (the program of speech, per-minute latency, trends) and the command
end to end, briefly, against the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.client_messages import SessionBegin, Transcript, Turn
from shared.settings import Settings
from streamscribe.benchmarks.metrics import group_of, load_manifest
from streamscribe.benchmarks.soak import (
    READ_SPEECH_GROUPS,
    SoakOptions,
    by_minute,
    continuous_speech,
    run_soak,
    trends,
)
from streamscribe.client import Received, StreamRun
from tests.conftest import DATA, RunningPipeline

ENTRIES = load_manifest(DATA / "manifest.jsonl")


def test_the_program_repeats_read_speech_to_fill_the_time_with_pauses_between() -> None:
    readable = [e for e in ENTRIES if e.text and group_of(e.id) in READ_SPEECH_GROUPS]
    wanted = 1.5 * sum(e.seconds for e in readable)  # more than the set: it goes round again
    program = continuous_speech(ENTRIES, wanted, gap_s=0.5)
    seconds = len(program.audio.pcm) / 2 / 16000
    assert wanted <= seconds < wanted + 60  # at most one recording over
    assert program.audio.sample_rate == 16000
    assert program.recordings > len(readable)
    assert program.reference.startswith(next(e.text for e in ENTRIES if e.text))


def test_no_read_speech_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no read speech"):
        continuous_speech([e for e in ENTRIES if not e.text], 10.0, gap_s=0.5)


def _final(end: float, at: float, uid: str) -> Received:
    final = Transcript("s", 0, True, uid, "words", end - 1, end, "")
    return Received.of(at, final)


def _turn(end: float, at: float, uids: tuple[str, ...]) -> Received:
    turn = Turn("s", 0, "t0", uids, "words", 0.0, end, "en", 1.0, (), "", True)
    return Received.of(at, turn)


def test_latency_is_grouped_by_minute_of_the_stream() -> None:
    begin = SessionBegin(
        "s", 0, 1, None, 16000, "pcm_s16le", "en", "tiny.en", None, False, (), True, ""
    )
    run = StreamRun(started_at=1000.0)
    run.received = [
        Received.of(1000.0, begin),
        _final(10.0, 1010.5, "u0"),
        _final(50.0, 1051.0, "u1"),
        _turn(50.0, 1052.0, ("u0", "u1")),
        _final(70.0, 1070.4, "u2"),
    ]
    rows = by_minute(run)
    assert [r["minute"] for r in rows] == [0, 1]
    assert rows[0]["finals"] == 2 and rows[0]["final_p95_s"] == 1.0 and rows[0]["turns"] == 1
    assert rows[1]["finals"] == 1 and rows[1]["turns"] == 0 and rows[1]["final_p50_s"] == 0.4


def test_trends_compare_the_first_minutes_with_the_last() -> None:
    minutes = [
        {"minute": m, "finals": 3, "final_p95_s": 1.0 + m / 10, "turns": 1} for m in range(10)
    ]
    samples = [{"rss_mib": {"ingest": v}, "redis_used_mib": v / 10} for v in (50, 60, 62, 63)]
    out = trends(minutes, samples)
    assert out["final_p95_first_5_min_s"] == 1.2 and out["final_p95_last_5_min_s"] == 1.7
    assert out["rss_growth_mib_after_warmup"] == {"ingest": 3.0}
    assert out["redis_growth_mib_after_warmup"] == 0.3
    assert out["minutes_without_a_turn"] == []


def test_a_short_soak_through_the_real_pipeline(pipeline: RunningPipeline, tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    options = SoakOptions(
        manifest=str(DATA / "manifest.jsonl"),
        minutes=0.5,
        url=pipeline.url,
        redis_url=pipeline.redis_url,
        transcribers=2,
        output=str(output),
        sample_every_s=10.0,
    )
    assert run_soak(options, Settings()) == 0
    report = json.loads(output.read_text())
    assert report["close_code"] == 1000 and report["finals"] > 3 and report["turns"] >= 1
    assert report["finals_never_settled"] == 0
    assert report["settled_wer"] < 0.25
    assert len(report["memory"]) >= 3 and "redis_used_mib" in report["memory"][-1]
