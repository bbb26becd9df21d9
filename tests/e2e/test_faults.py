"""Faults injected into real processes while sessions stream real recordings: every final
arrives exactly once, and ``up`` heals itself."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import redis

from shared import keys
from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up

pytestmark = pytest.mark.e2e

FILES = [
    "jfk-inaugural-1961.wav",
    "ls-test-clean-1089-134686-0000.wav",
    "ls-test-clean-1995-1837-0001.wav",
    "ls-test-other-3080-5032-0002.wav",
    "ls-test-other-2033-164914-0000.wav",
    "vad-pause-3s-1988-24833-0000-0002.wav",
]


@pytest.fixture(scope="module")
def healing_pipeline() -> Iterator[RunningPipeline]:
    running = start_up(free_port(), transcribers=2, env={"STREAMSCRIBE_RECLAIM_AFTER_S": "6"})
    yield running
    stop_up(running)


def stream_all(url: str) -> list[StreamRun]:
    async def main() -> list[StreamRun]:
        return await asyncio.gather(
            *(
                stream_audio(url, read_audio(DATA / name), speed=1.0, tail_silence_s=1.0)
                for name in FILES
            )
        )

    return asyncio.run(main())


def finals(run: StreamRun) -> list[tuple[str, str]]:
    return [(str(f.message.utterance_id), str(f.message.text)) for f in run.finals]


def turns(run: StreamRun) -> list[tuple[str, tuple[str, ...]]]:
    return [(str(t.message.turn_id), tuple(map(str, t.message.utterance_ids))) for t in run.turns]


def kill_a_transcriber_holding_a_job(
    redis_url: str,
    killed: list[int],
    stop: threading.Event,
    stream: str = keys.FINAL_JOBS_STREAM,
) -> None:
    client = redis.Redis.from_url(redis_url)
    while not stop.is_set():
        for consumer in client.xinfo_consumers(stream, keys.TRANSCRIBER_GROUP):
            if consumer["pending"] > 0:
                pid = int(consumer["name"].decode().rsplit("-", 1)[1])
                if psutil.pid_exists(pid):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
        time.sleep(0.02)


def stream_while_killing(
    pipeline: RunningPipeline, stream: str
) -> tuple[list[StreamRun], list[int]]:
    """Every file streamed while the first transcriber caught holding a job of ``stream`` is
    killed with SIGKILL; returns the runs and the pids killed."""
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=kill_a_transcriber_holding_a_job, args=(pipeline.redis_url, killed, stop, stream)
    )
    killer.start()
    try:
        return stream_all(pipeline.url), killed
    finally:
        stop.set()
        killer.join()


def test_kill_9_a_transcriber_holding_jobs_loses_and_doubles_nothing(
    healing_pipeline: RunningPipeline,
) -> None:
    baseline = stream_all(healing_pipeline.url)
    assert all(run.close_code == 1000 for run in baseline)

    faulted, killed = stream_while_killing(healing_pipeline, keys.FINAL_JOBS_STREAM)

    assert len(killed) == 1, "no transcriber was caught holding a job"
    expected = sum(len(finals(run)) for run in baseline)
    received = [final for run in faulted for final in finals(run)]
    ids = [uid for uid, _ in received]
    print(
        f"fault kill-9 transcriber: {len(FILES)} sessions, finals expected {expected}, "
        f"received {len(received)}, duplicated {len(ids) - len(set(ids))}"
    )
    assert len(received) == expected  # 0 lost
    assert len(set(ids)) == len(ids)  # 0 duplicated
    for before, after in zip(baseline, faulted, strict=True):
        assert after.close_code == 1000 and not after.errors
        assert [text for _, text in finals(after)] == [text for _, text in finals(before)]

    deadline = time.monotonic() + 30  # up restarts the killed transcriber, a live one again
    children = []
    while time.monotonic() < deadline:
        children = [
            c
            for c in psutil.Process(healing_pipeline.pid).children()
            if "transcriber" in c.cmdline()
            and c.pid != killed[0]
            and c.environ().get("STREAMSCRIBE_TRANSCRIBER_JOBS") == "live"
        ]
        if len(children) == 2:
            break
        time.sleep(0.2)
    assert len(children) == 2


def test_kill_9_a_transcriber_holding_a_turn_job_loses_no_turn(
    healing_pipeline: RunningPipeline,
) -> None:
    baseline = stream_all(healing_pipeline.url)
    faulted, killed = stream_while_killing(healing_pipeline, keys.TURN_JOBS_STREAM)
    assert len(killed) == 1, "no transcriber was caught holding a turn job"
    expected = sum(len(turns(run)) for run in baseline)
    received = [turn for run in faulted for turn in turns(run)]
    ids = [tid for tid, _ in received]
    print(
        f"fault kill-9 transcriber holding a turn: {len(FILES)} sessions, turns expected "
        f"{expected}, received {len(received)}, duplicated {len(ids) - len(set(ids))}"
    )
    assert len(received) == expected and len(set(ids)) == len(ids)
    for before, after in zip(baseline, faulted, strict=True):
        assert after.close_code == 1000 and not after.errors
        # the same turns settle the same finals (ids are per session, so compare the shape)
        assert [len(u) for _, u in turns(after)] == [len(u) for _, u in turns(before)]
        held = {str(f.message.utterance_id) for f in after.finals}
        assert all(set(u) <= held for _, u in turns(after))  # a turn only names finals sent
        assert after.transcript == before.transcript
