"""kill -9 of the segmenter while sessions are mid-utterance: `up` starts a new one, which
takes the sessions over from their checkpoints and replays the audio after them. Every
final arrives once, and the transcripts are as good as without the fault."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up

pytestmark = pytest.mark.e2e

BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
SPEAKERS = [
    BY_ID["long-ljspeech-LJ001-0001-0008"],
    BY_ID["jfk-inaugural-1961"],
    BY_ID["vad-pause-3s-1988-24833-0000-0002"],
    BY_ID["ls-test-clean-1089-134686-0000"],
]


@pytest.fixture(scope="module")
def healing() -> Iterator[RunningPipeline]:
    running = start_up(free_port(), transcribers=2)
    yield running
    stop_up(running)


def segmenter_pid(pipeline: RunningPipeline) -> int:
    [pid] = [
        c.pid for c in psutil.Process(pipeline.pid).children() if c.cmdline()[-1:] == ["segmenter"]
    ]
    return pid


def stream_all(pipeline: RunningPipeline, *, kill_after_s: float | None) -> list[StreamRun]:
    async def main() -> list[StreamRun]:
        runs = [
            asyncio.create_task(
                stream_audio(pipeline.url, read_audio(e.audio), speed=1.0, tail_silence_s=1.0)
            )
            for e in SPEAKERS
        ]
        if kill_after_s is not None:
            await asyncio.sleep(kill_after_s)
            os.kill(segmenter_pid(pipeline), signal.SIGKILL)
        return list(await asyncio.gather(*runs))

    return asyncio.run(main())


def test_kill_9_the_segmenter_mid_utterance_loses_and_doubles_nothing(
    healing: RunningPipeline,
) -> None:
    baseline = stream_all(healing, kill_after_s=None)
    faulted = stream_all(healing, kill_after_s=4.2)

    expected = sum(len(run.finals) for run in baseline)
    ids = [f.message.utterance_id for run in faulted for f in run.finals]
    print(
        f"fault kill-9 segmenter: {len(SPEAKERS)} sessions, finals expected {expected}, "
        f"received {len(ids)}, duplicated {len(ids) - len(set(ids))}"
    )
    assert len(ids) == len(set(ids))  # 0 duplicated
    assert len(ids) == expected  # 0 lost
    for entry, before, after in zip(SPEAKERS, baseline, faulted, strict=True):
        assert after.close_code == 1000 and not after.errors, after.errors
        assert corpus_wer([entry.text], [after.transcript]) <= (
            corpus_wer([entry.text], [before.transcript]) + 0.02
        )
