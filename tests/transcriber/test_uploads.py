"""Windows of uploaded recordings on the transcribers (real Redis, the real model): below
every live job, skipped once their upload has gone, taken over from a dead transcriber, and
dead-lettered with an error for the upload when they cannot be done."""

from __future__ import annotations

import time

import redis

from shared import keys
from shared.file_jobs import FileTask, FileWindowJob, FileWindowResult
from shared.redis_client import read_group
from shared.schema import FinalTranscript, JobKind
from streamscribe.benchmarks.metrics import normalize
from streamscribe.client import read_audio
from tests.conftest import DATA
from tests.transcriber.jobs import job
from tests.transcriber.test_recovery import RECOVERY, SteppedClock, age_pending, events_of
from transcriber.model import SpeechModel
from transcriber.worker import TranscriberWorker

JFK = read_audio(DATA / "jfk-inaugural-1961.wav").pcm


def window(
    upload_id: str = "up1", index: int = 3, task: FileTask = FileTask.TRANSCRIBE
) -> FileWindowJob:
    return FileWindowJob(
        upload_id=upload_id, window_index=index, start_sample=16000 * 60, pcm=JFK, task=task,
        language=None, prompt="", temperature=0.0, word_timestamps=True, enqueued_at=time.time(),
    )  # fmt: skip


def queue(client: redis.Redis, item: FileWindowJob, *, live: bool = True) -> None:
    if live:
        client.set(keys.upload_live(item.upload_id), b"1", ex=60)
    client.xadd(keys.FILE_JOBS_STREAM, item.encode())  # type: ignore[arg-type]


def results(client: redis.Redis, upload_id: str = "up1") -> list[FileWindowResult]:
    entries = client.xrange(keys.upload_results(upload_id))
    return [FileWindowResult.decode(fields[b"result"]) for _, fields in entries]


def worker(client: redis.Redis, model: object, **kwargs: object) -> TranscriberWorker:
    made = TranscriberWorker(
        client, model, consumer=str(kwargs.pop("consumer", "t1")), block_ms=50,  # type: ignore[arg-type]
        recovery=RECOVERY, uploads=model, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    made.prepare()
    return made


def test_a_window_is_transcribed_in_the_recordings_times(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    transcriber = worker(redis_client, model)
    queue(redis_client, window())
    transcriber.step()
    [result] = results(redis_client)
    assert (result.upload_id, result.window_index, result.language) == ("up1", 3, "en")
    text = normalize(" ".join(s.text for s in result.segments))
    assert "ask not what your country can do for you" in text
    assert 60.0 <= result.segments[0].start < 61.0 and result.segments[-1].end <= 71.5
    assert result.segments[0].words[0].start >= 60.0  # words too
    assert redis_client.xlen(keys.FILE_JOBS_STREAM) == 0  # acknowledged and deleted
    assert redis_client.ttl(keys.upload_results("up1")) > 0  # results do not outlive an hour


def test_live_finals_go_before_a_waiting_window(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    transcriber = worker(redis_client, model)
    queue(redis_client, window())
    redis_client.xadd(keys.FINAL_JOBS_STREAM, job(JobKind.FINAL).encode())  # type: ignore[arg-type]

    def one_step() -> None:
        transcriber.step()

    events = events_of(redis_client, "s1", one_step)
    assert [type(e) for e in events] == [FinalTranscript]
    assert results(redis_client) == []  # the window waits
    transcriber.step()
    assert len(results(redis_client)) == 1


def test_a_window_of_an_upload_that_has_gone_is_skipped(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    transcriber = worker(redis_client, model)
    queue(redis_client, window(), live=False)  # the client hung up: its key lapsed
    transcriber.step()
    assert results(redis_client) == [] and transcriber._uploads is not None
    assert transcriber._uploads.windows_done == 0
    assert redis_client.xlen(keys.FILE_JOBS_STREAM) == 0


def test_a_dead_transcribers_window_is_taken_over(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    clock = SteppedClock()
    survivor = worker(redis_client, model, consumer="alive", clock=clock)
    queue(redis_client, window())
    read_group(
        redis_client, keys.TRANSCRIBER_GROUP, "dead-one", {keys.FILE_JOBS_STREAM: ">"}, count=1
    )
    survivor.step()
    assert results(redis_client) == []  # held by the dead one, not idle long enough yet
    age_pending(redis_client, keys.FILE_JOBS_STREAM)
    clock.step()
    survivor.step()
    assert len(results(redis_client)) == 1 and not results(redis_client)[0].error
    assert redis_client.xpending(keys.FILE_JOBS_STREAM, keys.TRANSCRIBER_GROUP)["pending"] == 0


class BrokenFileModel:
    def transcribe_file_window(self, job: FileWindowJob) -> FileWindowResult:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_a_window_that_fails_every_attempt_is_dead_lettered_with_an_error(
    redis_client: redis.Redis,
) -> None:
    clock = SteppedClock()
    transcriber = worker(redis_client, BrokenFileModel(), clock=clock)
    queue(redis_client, window())
    transcriber.step()  # attempt 1 fails: left pending for another try
    assert results(redis_client) == [] and redis_client.xlen(keys.DEAD_JOBS_STREAM) == 0
    age_pending(redis_client, keys.FILE_JOBS_STREAM)
    clock.step()
    transcriber.step()  # taken over, attempt 2 (of RECOVERY's 2) fails: dead-lettered
    [failed] = results(redis_client)
    assert failed.window_index == 3 and "illegal memory access" in failed.error
    [(_, dead)] = redis_client.xrange(keys.DEAD_JOBS_STREAM)
    assert b"illegal memory access" in dead[b"reason"]
    assert redis_client.xlen(keys.FILE_JOBS_STREAM) == 0


def test_an_english_only_model_answers_a_translation_with_an_error(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    transcriber = worker(redis_client, model)
    queue(redis_client, window(task=FileTask.TRANSLATE))
    transcriber.step()
    [result] = results(redis_client)
    assert "English-only" in result.error and result.segments == ()


def test_a_transcriber_for_uploads_leaves_live_jobs_to_the_others(
    redis_client: redis.Redis, model: SpeechModel
) -> None:
    files_only = worker(redis_client, model, live=False)
    queue(redis_client, window())
    redis_client.xadd(keys.FINAL_JOBS_STREAM, job(JobKind.FINAL).encode())  # type: ignore[arg-type]
    files_only.step()
    assert len(results(redis_client)) == 1
    files_only.step()  # nothing more for it: the final waits for a live transcriber
    assert redis_client.xlen(keys.FINAL_JOBS_STREAM) == 1 and files_only.jobs_done == 0
    assert redis_client.xinfo_groups(keys.FINAL_JOBS_STREAM) == []  # it never joined the live
