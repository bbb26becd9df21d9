"""Redis paused and Redis restarted empty under live sessions, with every part a real process.

A pause (the network blip case: Redis keeps its data) loses and doubles nothing. A restart
without persistence ends the sessions it wiped with a clear error, never a hang; no part
crashes, and new sessions work once Redis is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import psutil
import pytest

from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up, wait_until

pytestmark = pytest.mark.e2e

BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
SPEAKERS = [BY_ID["jfk-inaugural-1961"], BY_ID["ls-test-clean-1089-134686-0000"]]


@pytest.fixture
def fragile() -> Iterator[RunningPipeline]:
    running = start_up(free_port(), transcribers=1)
    yield running
    stop_up(running)


def parts(pipeline: RunningPipeline) -> dict[str, int]:
    """The live children of ``up`` by part (a killed one not yet reaped is left out)."""
    found = {}
    for child in psutil.Process(pipeline.pid).children():
        try:
            command = child.cmdline()
        except psutil.Error:  # a zombie or already gone
            continue
        name = "redis" if "redis-server" in " ".join(command) else command[-1]
        found[name] = child.pid
    return found


def ready(pipeline: RunningPipeline) -> bool:
    try:
        with urllib.request.urlopen(f"{pipeline.http}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stream_while(pipeline: RunningPipeline, fault: object) -> list[StreamRun]:
    async def main() -> list[StreamRun]:
        runs = [
            asyncio.create_task(
                stream_audio(
                    pipeline.url,
                    read_audio(e.audio),
                    speed=1.0,
                    tail_silence_s=1.0,
                    finish_timeout_s=60,
                )
            )
            for e in SPEAKERS
        ]
        await asyncio.sleep(3.0)
        assert callable(fault)
        await asyncio.to_thread(fault)
        return list(await asyncio.gather(*runs))

    return asyncio.run(main())


def test_a_redis_pause_loses_and_doubles_nothing(fragile: RunningPipeline) -> None:
    redis_pid = parts(fragile)["redis"]

    def pause() -> None:
        os.kill(redis_pid, signal.SIGSTOP)
        time.sleep(2.0)
        os.kill(redis_pid, signal.SIGCONT)

    runs = stream_while(fragile, pause)
    ids = [f.message.utterance_id for run in runs for f in run.finals]
    print(
        f"fault redis paused 2 s: {len(runs)} sessions, finals received {len(ids)}, "
        f"duplicated {len(ids) - len(set(ids))}, closes {[r.close_code for r in runs]}"
    )
    for entry, run in zip(SPEAKERS, runs, strict=True):
        assert run.close_code == 1000 and not run.errors
        ids = [f.message.utterance_id for f in run.finals]
        assert len(ids) == len(set(ids))
        assert corpus_wer([entry.text], [run.transcript]) < 0.15


def test_a_redis_restart_ends_sessions_clearly_and_new_ones_work(fragile: RunningPipeline) -> None:
    before = parts(fragile)

    def restart() -> None:
        os.kill(before["redis"], signal.SIGKILL)  # `up` starts a new, empty one on its port

    started = time.monotonic()
    runs = stream_while(fragile, restart)
    print(
        f"fault redis restarted empty: {len(runs)} sessions ended in "
        f"{time.monotonic() - started:.1f} s with {[r.close_code for r in runs]}"
    )
    assert time.monotonic() - started < 60  # nobody hung
    for run in runs:
        assert run.close_code == 1011, run.close_code
        [error] = run.errors
        # whichever ingest sees first: the connection dropping, or the session's keys gone
        # when a renewal reaches the empty Redis that replaced it
        said = ("lost its connection to Redis", "this session's state is gone from Redis")
        assert error["code"] == "unavailable" and any(s in error["message"] for s in said)

    new_redis = wait_until(
        lambda: parts(fragile).get("redis", before["redis"]) != before["redis"], 20, every=0.2
    )
    after = parts(fragile)
    assert new_redis, f"no new redis-server under up: {after}"
    assert fragile.process.poll() is None
    for part in ("ingest", "segmenter", "transcriber"):
        assert after[part] == before[part], f"{part} crashed"
    assert wait_until(lambda: ready(fragile), 60, every=0.5), "ingest never became ready again"
    entry = SPEAKERS[0]
    again = asyncio.run(
        stream_audio(fragile.url, read_audio(entry.audio), speed=2.0, tail_silence_s=1.0)
    )
    assert again.close_code == 1000
    assert corpus_wer([entry.text], [again.transcript]) < 0.15
