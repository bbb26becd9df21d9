"""The transcriber worker: takes jobs from Redis, runs the model, publishes results."""

from __future__ import annotations

import os
import socket
import time
from typing import Protocol

import redis

from shared import keys
from shared.audio import PIPELINE_SAMPLE_RATE
from shared.errors import SchemaError
from shared.redis_client import StreamEntry, read_group, speculation_done
from shared.schema import (
    Commit,
    FinalTranscript,
    JobKind,
    PartialTranscript,
    TranscriptionJob,
    TranscriptResult,
    UtteranceFailed,
    Word,
    json_object,
)
from transcriber import logger
from transcriber.model import Transcription


class Transcribes(Protocol):
    def transcribe(
        self, pcm: bytes, language: str | None, *, final: bool, speech_ratio: float = 1.0
    ) -> Transcription: ...


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class TranscriberWorker:
    """Consumes final and speculative jobs before partials; partials that are stale are skipped.

    ``run()`` blocks until ``stop()``; the job in hand is always finished (warm shutdown).
    """

    def __init__(
        self,
        client: redis.Redis,
        model: Transcribes,
        *,
        consumer: str | None = None,
        block_ms: int = 1000,
    ) -> None:
        self._redis = client
        self._model = model
        self.consumer = consumer or default_consumer_name()
        self._block_ms = block_ms
        self._stopping = False
        self.jobs_done = 0
        self.jobs_skipped = 0

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> None:
        self.prepare()
        logger.info("transcriber %s waiting for jobs", self.consumer)
        while not self._stopping:
            self.step()
        logger.info("transcriber %s stopped after %d jobs", self.consumer, self.jobs_done)

    def step(self) -> None:
        """Waits up to ``block_ms`` for jobs and handles what arrived."""
        for stream, entry_id, fields in self._next_entries():
            self._handle_entry(stream, entry_id, fields)

    def prepare(self) -> None:
        """Creates the consumer groups and this consumer (idempotent)."""
        for stream in (keys.FINAL_JOBS_STREAM, keys.PARTIAL_JOBS_STREAM):
            try:
                self._redis.xgroup_create(stream, keys.TRANSCRIBER_GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._redis.xgroup_createconsumer(stream, keys.TRANSCRIBER_GROUP, self.consumer)

    def _next_entries(self) -> list[StreamEntry]:
        """Finals first: a non-blocking look at the final stream, then a blocking read of both."""
        entries = read_group(
            self._redis,
            keys.TRANSCRIBER_GROUP,
            self.consumer,
            {keys.FINAL_JOBS_STREAM: ">"},
            count=1,
        )
        if not entries:
            entries = read_group(
                self._redis,
                keys.TRANSCRIBER_GROUP,
                self.consumer,
                {keys.FINAL_JOBS_STREAM: ">", keys.PARTIAL_JOBS_STREAM: ">"},
                count=1,
                block_ms=self._block_ms,
            )
        entries.sort(key=lambda e: e[0] != keys.FINAL_JOBS_STREAM)
        return entries

    def _handle_entry(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            job = TranscriptionJob.decode(fields)
        except SchemaError:
            logger.exception("dropping undecodable job %s from %s", entry_id, stream)
            self._ack(stream, entry_id)
            return
        if stream == keys.PARTIAL_JOBS_STREAM:
            self._ack(stream, entry_id)
        if not self._is_current(job):
            self.jobs_skipped += 1
        else:
            self._run_job(job)
        if stream == keys.FINAL_JOBS_STREAM:
            self._ack(stream, entry_id)

    def _ack(self, stream: str, entry_id: bytes) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(stream, keys.TRANSCRIBER_GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        pipe.execute()

    def _is_current(self, job: TranscriptionJob) -> bool:
        state = keys.session_state(job.session_id)
        if job.kind is JobKind.FINAL:
            return True
        if job.kind is JobKind.PARTIAL:
            utterance, seq = self._redis.hmget(state, "u", "pseq")
            return _int(utterance) == job.utterance_index and _int(seq) == job.partial_seq
        commit, (utterance, revision) = self._speculation_state(job)
        if commit is not None:
            return Commit.from_json_obj(json_object(commit, "commit")).revision == job.revision
        return _int(utterance) == job.utterance_index and _int(revision) == job.revision

    def _speculation_state(self, job: TranscriptionJob) -> tuple[bytes | None, list[bytes | None]]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(keys.commit_key(job.session_id, job.utterance_index))
        pipe.hmget(keys.session_state(job.session_id), "u", "rev")
        commit, state = pipe.execute()
        return commit, state

    def _run_job(self, job: TranscriptionJob) -> None:
        final = job.kind is not JobKind.PARTIAL
        started = time.time()
        try:
            transcription = self._model.transcribe(
                job.pcm, job.language, final=final, speech_ratio=job.speech_ratio
            )
        except Exception as exc:  # the model failed on this job: the client must hear of it
            logger.exception(
                "transcription failed for %s utterance %d", job.session_id, job.utterance_index
            )
            if final:
                self._redis.publish(
                    keys.session_channel(job.session_id),
                    UtteranceFailed(job.session_id, job.utterance_index, str(exc)).encode(),
                )
            return
        result = _result(job, transcription, started, time.time())
        channel = keys.session_channel(job.session_id)
        if job.kind is JobKind.PARTIAL:
            self._redis.publish(channel, PartialTranscript(result).encode())
        elif job.kind is JobKind.SPECULATIVE:
            speculation_done(
                self._redis, job.session_id, job.utterance_index, job.revision, result.encode()
            )
        else:
            commit = Commit(job.utterance_index, 0, job.endpoint_at, job.enqueued_at)
            self._redis.publish(channel, FinalTranscript(result, commit).encode())
        self.jobs_done += 1


def _result(
    job: TranscriptionJob, transcription: Transcription, started: float, done: float
) -> TranscriptResult:
    offset = job.start_sample / PIPELINE_SAMPLE_RATE
    duration = len(job.pcm) / 2 / PIPELINE_SAMPLE_RATE
    has_text = bool(transcription.text)
    return TranscriptResult(
        session_id=job.session_id,
        utterance_index=job.utterance_index,
        partial_seq=job.partial_seq,
        text=transcription.text,
        start=round(offset + (transcription.start if has_text else 0.0), 3),
        end=round(offset + (transcription.end if has_text else duration), 3),
        language=transcription.language,
        language_probability=round(transcription.language_probability, 4),
        words=tuple(
            Word(
                w.word,
                round(offset + w.start, 3),
                round(offset + w.end, 3),
                round(w.probability, 4),
            )
            for w in transcription.words
        ),
        model_started_at=started,
        model_done_at=done,
    )


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (bytes, str, int)) else None
