"""``bench --paired``: each face's turns against the first face's, recording by recording."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.client_messages import SessionBegin, Transcript, Turn
from streamscribe.benchmarks.metrics import ManifestEntry, run_each
from streamscribe.benchmarks.paired import (
    PairedResult,
    Streamer,
    paired_delays,
    recordings_at_once,
    stream_paired,
    turn_arrivals,
)
from streamscribe.client import Audio, Received, StreamRun


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
    delays = paired_delays(results, "v1")
    rt = delays["rt"]
    assert rt["turns_compared"] == 2 and rt["recordings_compared"] == 1
    assert rt["recordings_not_compared"] == ["b: 2 turns, v1 1"]
    assert rt["turn_delay_vs_v1_mean_s"] == 0.15  # 0.1 and 0.2
    assert rt["audio_start_vs_v1_median_s"] == 0.1  # 0.2 and 0.0
    assert set(delays) == {"rt"}
    assert "finals_compared" not in rt  # neither had finals


def test_finals_are_paired_and_a_face_without_turns_gets_no_turn_figures() -> None:
    def with_finals(started_at: float, arrivals: list[float]) -> StreamRun:
        run = run_with_turns(started_at, [])
        for k, at in enumerate(arrivals):
            final = Transcript("s", k + 1, True, f"s-u{k}", "hi", 0.0, 1.0, "")
            run.received.append(Received.of(at, final))
        return run

    results = [
        PairedResult(
            entry("a"),
            {"v1": with_finals(0.0, [1.0, 2.0]), "deepgram": with_finals(0.0, [1.05, 2.15])},
        )
    ]
    dg = paired_delays(results, "v1")["deepgram"]
    assert dg["finals_compared"] == 2 and dg["recordings_compared_by_finals"] == 1
    assert dg["final_delay_vs_v1_mean_s"] == 0.1  # 0.05 and 0.15
    assert "turns_compared" not in dg


def test_every_face_streams_each_recording_at_once_and_the_load_is_kept() -> None:
    running = 0
    most = 0
    calls: list[tuple[str, str]] = []

    def streamer(face: str) -> Streamer:
        async def stream(url: str, audio: Audio, **_: object) -> StreamRun:
            nonlocal running, most
            running += 1
            most = max(most, running)
            calls.append((face, url))
            await asyncio.sleep(0.01)
            running -= 1
            return run_with_turns(0.0, [1.0])

        return stream

    entries = [entry("a"), entry("b"), entry("c")]
    audio = {e.id: Audio(b"\0\0", 16000) for e in entries}
    streamers = {"v1": (streamer("v1"), "ws://v1"), "realtime": (streamer("rt"), "ws://rt")}
    results = asyncio.run(
        stream_paired(streamers, entries, audio, concurrency=4, speed=1.0, tail_silence_s=0.0)
    )
    assert recordings_at_once(4, 2) == 2
    assert sorted(r.entry.id for r in results) == ["a", "b", "c"]
    assert all(set(r.runs) == {"v1", "realtime"} for r in results)
    assert most == 4  # two recordings, each through both faces
    assert calls.count(("v1", "ws://v1")) == calls.count(("rt", "ws://rt")) == 3


def test_fewer_recordings_than_the_load_are_taken_again() -> None:
    seen: list[str] = []

    async def job(e: ManifestEntry) -> None:
        seen.append(e.id)

    asyncio.run(run_each([entry("a")], 3, job))
    assert seen == ["a", "a", "a"]
