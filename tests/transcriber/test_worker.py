"""The transcriber worker against a real Redis with the real model."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
import redis
from msgspec.structs import replace

from shared import keys
from shared.schema import (
    FinalTranscript,
    JobKind,
    PartHeartbeat,
    PartialTranscript,
    SessionEvent,
    TranscriptionJob,
    decode_event,
)
from streamscribe.benchmarks.metrics import normalize
from tests.transcriber.jobs import job
from transcriber.metrics import backlog_metrics
from transcriber.model import SpeechModel, UtteranceAudio
from transcriber.results import Transcription
from transcriber.turns import SettledTurn, TurnAudio
from transcriber.worker import BatchOptions, PartialOptions, TranscriberWorker


def drain(
    client: redis.Redis, worker: TranscriberWorker, jobs: list[tuple[str, TranscriptionJob]]
) -> list[SessionEvent]:
    pubsub = client.pubsub()
    pubsub.subscribe(keys.session_channel("s1"))
    pubsub.get_message(timeout=1)
    for stream, item in jobs:
        client.xadd(stream, item.encode())  # type: ignore[arg-type]
    for _ in range(len(jobs)):
        worker.step()
    events = []
    while (message := pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "message":
            events.append(decode_event(message["data"]))
    pubsub.close()
    return events


def test_final_is_published_with_stream_times(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    worker = TranscriberWorker(redis_client, model, consumer="t1", block_ms=100)
    worker.prepare()
    timed = replace(job(JobKind.FINAL), wall_start=1_000_000.0)
    [event] = drain(redis_client, worker, [(keys.FINAL_JOBS_STREAM, timed)])
    assert isinstance(event, FinalTranscript)
    assert normalize(event.result.text) == "he could wait no longer"
    assert event.result.start >= 2.0  # offset by start_sample (2 s)
    assert event.result.words[0].start >= 2.0
    # the wall clock of the speech's start: the job's, plus where in its audio speech began
    assert event.result.wall_start == pytest.approx(1_000_000.0 + event.result.start - 2.0)
    assert redis_client.xlen(keys.FINAL_JOBS_STREAM) == 0  # acknowledged and deleted


def test_stale_partials_and_void_speculations_are_skipped(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    worker = TranscriberWorker(redis_client, model, consumer="t1", block_ms=100)
    worker.prepare()
    redis_client.hset(keys.session_state("s1"), mapping={"u": 0, "pseq": 2, "rev": -1})
    events = drain(
        redis_client,
        worker,
        [
            (keys.PARTIAL_JOBS_STREAM, job(JobKind.PARTIAL, seq=1)),  # superseded by seq 2
            (keys.PARTIAL_JOBS_STREAM, job(JobKind.PARTIAL, seq=2)),
            (keys.FINAL_JOBS_STREAM, job(JobKind.SPECULATIVE, revision=1)),  # speech resumed
        ],
    )
    assert [type(e) for e in events] == [PartialTranscript]
    assert isinstance(events[0], PartialTranscript) and events[0].result.partial_seq == 2
    assert worker.jobs_skipped == 2


def test_jobs_of_many_sessions_run_as_one_batch_finals_first(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    worker = TranscriberWorker(
        redis_client, model, consumer="t1", block_ms=100, batch=BatchOptions(4, 50)
    )
    worker.prepare()
    sessions = ["a1", "a2", "a3", "a4"]
    redis_client.hset(keys.session_state("p1"), mapping={"u": 0, "pseq": 1})
    pubsub = redis_client.pubsub()
    pubsub.psubscribe("ss:{*}:events")
    pubsub.get_message(timeout=1)
    partial = replace(job(JobKind.PARTIAL, seq=1), session_id="p1")
    redis_client.xadd(keys.PARTIAL_JOBS_STREAM, partial.encode())  # type: ignore[arg-type]
    for sid in sessions:
        final = replace(job(JobKind.FINAL), session_id=sid)
        redis_client.xadd(keys.FINAL_JOBS_STREAM, final.encode())  # type: ignore[arg-type]
    worker.step()  # a full batch of finals; the partial waits for the next
    worker.step()
    events = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "pmessage":
            events.append(decode_event(message["data"]))
    pubsub.close()
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    assert sorted(f.result.session_id for f in finals) == sessions
    assert all(normalize(f.result.text) == "he could wait no longer" for f in finals)
    assert all(f.result.start >= 2.0 for f in finals)
    assert isinstance(events[-1], PartialTranscript)  # after every final
    sizes = {s.name: s.value for s in worker.metrics.batch_size.collect()[0].samples}
    assert sizes["streamscribe_batch_size_count"] == 2  # one batch of finals, one of partials
    assert sizes["streamscribe_batch_size_sum"] == 5
    assert redis_client.xlen(keys.FINAL_JOBS_STREAM) == 0


class SlowModel:
    """Takes ``seconds`` of its clock per decode: what the partials' share is measured in."""

    def __init__(self, seconds: float) -> None:
        self.now = 0.0
        self.seconds = seconds

    def clock(self) -> float:
        return self.now

    def transcribe_batch(
        self, utterances: Sequence[UtteranceAudio], *, final: bool
    ) -> list[Transcription]:
        self.now += self.seconds
        return [Transcription("words", 0.0, 1.0, "en", 1.0, (), 0) for _ in utterances]

    def settle_turn(self, turn: TurnAudio) -> SettledTurn:
        raise AssertionError("no turn here")


def test_partials_past_their_share_of_model_time_wait_and_finals_do_not(
    redis_client: redis.Redis,
) -> None:
    model = SlowModel(seconds=1.0)
    worker = TranscriberWorker(
        redis_client,
        model,
        consumer="t1",
        block_ms=100,
        partials=PartialOptions(share=0.25, burst_s=0.5),
        clock=model.clock,
    )
    worker.prepare()
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.session_channel("s1"))
    pubsub.get_message(timeout=1)
    state = keys.session_state("s1")
    redis_client.hset(state, mapping={"u": 0, "pseq": 1})
    redis_client.xadd(keys.PARTIAL_JOBS_STREAM, job(JobKind.PARTIAL, seq=1).encode())  # type: ignore[arg-type]
    worker.step()  # 1 s of model time against a 0.5 s burst: 0.5 s in debt
    redis_client.hset(state, "pseq", 2)
    redis_client.xadd(keys.PARTIAL_JOBS_STREAM, job(JobKind.PARTIAL, seq=2).encode())  # type: ignore[arg-type]
    final = replace(job(JobKind.FINAL), utterance_index=1)
    redis_client.xadd(keys.FINAL_JOBS_STREAM, final.encode())  # type: ignore[arg-type]
    worker.step()
    assert redis_client.xlen(keys.PARTIAL_JOBS_STREAM) == 1  # left waiting, not dropped
    worker.step()  # still in debt: nothing to do, and the wait ends within block_ms
    assert redis_client.xlen(keys.PARTIAL_JOBS_STREAM) == 1
    model.now += 2.0  # 0.5 s of debt paid back at 0.25 s per second
    worker.step()
    events = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            events.append(decode_event(message["data"]))
    pubsub.close()
    kinds = [(type(e).__name__, e.result.partial_seq) for e in events]  # type: ignore[union-attr]
    assert kinds == [("PartialTranscript", 1), ("FinalTranscript", 0), ("PartialTranscript", 2)]
    assert redis_client.xlen(keys.PARTIAL_JOBS_STREAM) == 0


def test_partial_options_are_checked() -> None:
    for share, burst in ((0.0, 1.0), (1.5, 1.0), (0.5, 0.0)):
        with pytest.raises(ValueError, match="share"):
            PartialOptions(share=share, burst_s=burst)


def test_batch_options_are_checked() -> None:
    with pytest.raises(ValueError, match="batch size"):
        BatchOptions(0)


def test_the_scaling_signal_is_backlog_per_live_transcriber(redis_client: redis.Redis) -> None:
    for number in (1, 2):
        beat = PartHeartbeat(
            "transcriber", f"t{number}", "h", number, 0.0, time.time(), "", True, 0, 0
        )
        redis_client.set(keys.part_heartbeat(beat.part_id), beat.encode(), ex=10)
        redis_client.sadd(keys.PARTS_INDEX, beat.part_id)
    for _ in range(5):
        redis_client.xadd(keys.FINAL_JOBS_STREAM, job(JobKind.FINAL).encode())  # type: ignore[arg-type]
    assert backlog_metrics(redis_client) == {
        "UtteranceBacklog": 5,
        "UtteranceBacklogPerTranscriber": 2.5,
    }
