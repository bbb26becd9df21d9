"""Final jobs outlive the transcriber holding them; a poison job ends dead-lettered with an
error to its speaker (real Redis; the real model where a job must succeed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import msgspec
import pytest
import redis

from shared import keys
from shared.redis_client import read_group
from shared.schema import FinalTranscript, JobKind, TurnTranscript, UtteranceFailed, decode_event
from tests.transcriber.jobs import job
from transcriber.model import SpeechModel, UtteranceAudio
from transcriber.recovery import RecoveryOptions
from transcriber.results import Transcription
from transcriber.turns import SettledTurn, TurnAudio
from transcriber.worker import TranscriberWorker

RECOVERY = RecoveryOptions(reclaim_after_s=30.0, max_attempts=2)
"""Jobs are taken over only once a test ages them past 30 s (:func:`age_pending`): no test
waits on the clock, and none sees a job taken over early because the machine is slow."""


class SteppedClock:
    """A clock that moves only when told: the worker looks for jobs to take over at most
    every half ``reclaim_after_s`` by it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float = RECOVERY.reclaim_after_s) -> None:
        self.now += seconds


def age_pending(client: redis.Redis, stream: str = keys.FINAL_JOBS_STREAM) -> None:
    """Makes every job pending in ``stream`` look idle for a minute, as if its holder had
    died a minute ago (XCLAIM to the same consumer with IDLE; JUSTID keeps the attempts)."""
    for pending in client.xpending_range(stream, keys.TRANSCRIBER_GROUP, "-", "+", count=100):
        client.xclaim(
            stream,
            keys.TRANSCRIBER_GROUP,
            pending["consumer"].decode(),
            0,
            [pending["message_id"]],
            idle=60_000,
            justid=True,
        )


class CrashingModel:
    """A model that fails every utterance, as a corrupt input or a broken GPU would."""

    def transcribe_batch(
        self, utterances: Sequence[UtteranceAudio], *, final: bool
    ) -> list[Transcription]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def settle_turn(self, turn: TurnAudio) -> SettledTurn:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def events_of(client: redis.Redis, session_id: str, action: object) -> list[object]:
    pubsub = client.pubsub()
    pubsub.subscribe(keys.session_channel(session_id))
    pubsub.get_message(timeout=1)
    assert callable(action)
    action()
    found = []
    while (message := pubsub.get_message(timeout=0.3)) is not None:
        if message["type"] == "message":
            found.append(decode_event(message["data"]))
    pubsub.close()
    return found


def held_by_dead_transcriber(client: redis.Redis) -> bytes:
    """A final job read by a transcriber that then died (never acknowledged)."""
    client.xadd(keys.FINAL_JOBS_STREAM, job(JobKind.FINAL).encode())  # type: ignore[arg-type]
    [(_, entry_id, _)] = read_group(
        client, keys.TRANSCRIBER_GROUP, "dead-one", {keys.FINAL_JOBS_STREAM: ">"}, count=1
    )
    return entry_id


def test_a_dead_transcribers_job_is_taken_over_and_published_once(
    redis_client: redis.Redis,
    model: SpeechModel,
) -> None:
    survivor = TranscriberWorker(
        redis_client, model, consumer="alive", block_ms=50, recovery=RECOVERY
    )
    survivor.prepare()
    held_by_dead_transcriber(redis_client)
    age_pending(redis_client)
    events = events_of(redis_client, "s1", lambda: [survivor.step() for _ in range(3)])
    assert [type(e) for e in events] == [FinalTranscript]
    assert redis_client.xpending(keys.FINAL_JOBS_STREAM, keys.TRANSCRIBER_GROUP)["pending"] == 0
    assert redis_client.xlen(keys.FINAL_JOBS_STREAM) == 0


def test_a_job_in_hand_is_kept_fresh_and_not_taken(
    redis_client: redis.Redis,
    model: SpeechModel,
) -> None:
    clock = SteppedClock()
    other = TranscriberWorker(
        redis_client, model, consumer="other", block_ms=50, recovery=RECOVERY, clock=clock
    )
    other.prepare()
    entry_id = held_by_dead_transcriber(redis_client)
    holder = TranscriberWorker(redis_client, model, consumer="dead-one", recovery=RECOVERY)
    for _ in range(3):  # the holder's heartbeat, while its model works on a long utterance
        age_pending(redis_client)  # a long while since the last beat
        pipe = redis_client.pipeline()
        holder.recovery.keep_fresh(pipe, [(keys.FINAL_JOBS_STREAM, entry_id)])
        pipe.execute()
        clock.step()  # the other transcriber looks for jobs to take over each time
        other.step()
    [pending] = redis_client.xpending_range(
        keys.FINAL_JOBS_STREAM, keys.TRANSCRIBER_GROUP, min="-", max="+", count=10
    )
    assert pending["consumer"] == b"dead-one" and pending["times_delivered"] == 1


def test_a_poison_job_is_dead_lettered_and_its_speaker_told(redis_client: redis.Redis) -> None:
    clock = SteppedClock()
    worker = TranscriberWorker(
        redis_client, CrashingModel(), consumer="t1", block_ms=50, recovery=RECOVERY, clock=clock
    )
    worker.prepare()
    redis_client.xadd(keys.FINAL_JOBS_STREAM, job(JobKind.FINAL, index=4).encode())  # type: ignore[arg-type]

    def attempts() -> None:
        worker.step()  # attempt 1 fails: left for another try
        assert redis_client.xlen(keys.DEAD_JOBS_STREAM) == 0
        age_pending(redis_client)
        clock.step()
        worker.step()  # taken over: attempt 2 fails: dead-lettered

    events = events_of(redis_client, "s1", attempts)
    assert len(events) == 1 and isinstance(events[0], UtteranceFailed)
    assert events[0].utterance_index == 4 and "illegal memory access" in events[0].message
    [(_, dead)] = redis_client.xrange(keys.DEAD_JOBS_STREAM)
    assert b"illegal memory access" in dead[b"reason"]
    assert redis_client.xlen(keys.FINAL_JOBS_STREAM) == 0
    assert redis_client.xpending(keys.FINAL_JOBS_STREAM, keys.TRANSCRIBER_GROUP)["pending"] == 0
    worker.step()
    assert redis_client.xlen(keys.DEAD_JOBS_STREAM) == 1  # once


def test_a_job_that_killed_every_transcriber_is_dead_lettered_unrun(
    redis_client: redis.Redis,
) -> None:
    worker = TranscriberWorker(
        redis_client,
        CrashingModel(),
        consumer="t2",
        block_ms=50,
        recovery=replace(RECOVERY, max_attempts=1),
    )
    worker.prepare()
    held_by_dead_transcriber(redis_client)
    age_pending(redis_client)
    events = events_of(redis_client, "s1", worker.step)
    assert [type(e) for e in events] == [UtteranceFailed]
    assert "died on every attempt" in str(redis_client.xrange(keys.DEAD_JOBS_STREAM)[0][1])


def test_a_turn_that_fails_every_attempt_falls_back_to_its_finals(
    redis_client: redis.Redis,
) -> None:
    clock = SteppedClock()
    worker = TranscriberWorker(
        redis_client, CrashingModel(), consumer="t3", block_ms=50, recovery=RECOVERY, clock=clock
    )
    worker.prepare()
    turn_job = msgspec.structs.replace(
        job(JobKind.TURN, index=1), first_utterance=2, last_utterance=4
    )
    redis_client.xadd(keys.TURN_JOBS_STREAM, turn_job.encode())  # type: ignore[arg-type]

    def attempts() -> None:
        worker.step()
        age_pending(redis_client, keys.TURN_JOBS_STREAM)
        clock.step()
        worker.step()

    events = events_of(redis_client, "s1", attempts)
    assert len(events) == 1 and isinstance(events[0], TurnTranscript)
    turn = events[0]
    assert (turn.turn_index, turn.first_utterance, turn.last_utterance) == (1, 2, 4)
    assert turn.fallback and not turn.result.text
    assert redis_client.xlen(keys.TURN_JOBS_STREAM) == 0
    assert redis_client.xlen(keys.DEAD_JOBS_STREAM) == 1


def test_recovery_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RecoveryOptions(max_attempts=0)
