"""``bench --paired``: each face's turns against the first face's, recording by recording."""

from __future__ import annotations

from pathlib import Path

from shared.client_messages import SessionBegin, Turn
from streamscribe.benchmarks.metrics import ManifestEntry
from streamscribe.benchmarks.paired import PairedResult, paired_turn_delays, turn_arrivals
from streamscribe.client import Received, StreamRun


def run_with_turns(started_at: float, arrivals: list[float]) -> StreamRun:
    run = StreamRun(started_at=started_at)
    begin = SessionBegin(
        "s", 0, protocol=1, resume_token=None, sample_rate=16000, encoding="pcm_s16le",
        language="en", model="", room=None, listen=False, translate=(), partials=False, name="",
    )  # fmt: skip
    run.received.append(Received.of(started_at, begin))
    for k, at in enumerate(arrivals):
        turn = Turn("s", k + 1, f"s-t{k}", (), "hi", 0.0, 1.0, "en", 1.0, (), "", True)
        run.received.append(Received.of(at, turn))
    return run


def entry(name: str) -> ManifestEntry:
    return ManifestEntry(name, Path(f"{name}.wav"), "hi", 1.0)


def test_turns_arrive_counted_from_each_streams_own_start() -> None:
    assert turn_arrivals(run_with_turns(100.0, [101.5, 103.0])) == [1.5, 3.0]


def test_each_turn_is_compared_with_the_same_turn_of_the_first_face() -> None:
    results = [
        PairedResult(
            entry("a"),
            {"v1": run_with_turns(10.0, [11.0, 12.0]), "rt": run_with_turns(10.2, [11.3, 12.4])},
        ),
        PairedResult(
            entry("b"),
            {"v1": run_with_turns(0.0, [1.0]), "rt": run_with_turns(0.0, [1.0, 2.0])},
        ),
    ]
    delays = paired_turn_delays(results, "v1")
    rt = delays["rt"]
    assert rt["turns_compared"] == 2 and rt["recordings_compared"] == 1
    assert rt["recordings_not_compared"] == ["b: 2 turns, v1 1"]
    assert rt["turn_delay_vs_v1_mean_s"] == 0.15  # 0.1 and 0.2
    assert rt["audio_start_vs_v1_median_s"] == 0.1  # 0.2 and 0.0
    assert set(delays) == {"rt"}
