"""The transcriber worker: takes jobs from Redis, runs the model, publishes results."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import msgspec
import redis
from prometheus_client import CollectorRegistry

from shared import keys
from shared.audio import PIPELINE_SAMPLE_RATE
from shared.errors import SchemaError
from shared.rate import TokenBucket
from shared.redis_client import (
    SESSION_TTL_LUA,
    StreamEntry,
    ensure_consumer,
    publish_result,
    read_group,
    speculation_done,
)
from shared.resilience import REDIS_DOWN
from shared.schema import (
    Commit,
    FinalTranscript,
    JobKind,
    PartialTranscript,
    SessionState,
    TranscriptionJob,
    TranscriptResult,
    TurnTranscript,
    Word,
)
from shared.worker import RedisWorker
from transcriber import logger
from transcriber.english import EnglishTranslations, TranslatesSpeech
from transcriber.files import TranscribesFiles
from transcriber.language_choice import LanguageChoice, LanguageOptions
from transcriber.languages import SessionLanguages
from transcriber.metrics import TranscriberMetrics
from transcriber.model import UtteranceAudio
from transcriber.recovery import RELIABLE_STREAMS, JobRecovery, RecoveryOptions, fallback_turn
from transcriber.results import Transcription
from transcriber.turns import SettledTurn, TurnAudio, prompt_from
from transcriber.uploads import UploadWindows

# KEYS: the session's turn context, its record. ARGV: turn index, text. Keeps the newest
# turn's; expires with the session.
_SET_CONTEXT = (
    SESSION_TTL_LUA
    + """
local held = tonumber(redis.call('HGET', KEYS[1], 'turn') or '-1')
if tonumber(ARGV[1]) > held then
  redis.call('HSET', KEYS[1], 'turn', ARGV[1], 'text', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], session_ttl(KEYS[2]))
"""
)


class Transcribes(Protocol):
    def transcribe_batch(
        self, utterances: Sequence[UtteranceAudio], *, final: bool
    ) -> list[Transcription]: ...

    def settle_turn(self, turn: TurnAudio) -> SettledTurn: ...

    def detect_languages(self, pcm: bytes) -> list[tuple[str, float]]: ...


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How many waiting jobs go through the model together, and how long to wait for more."""

    max_size: int = 1
    max_wait_ms: int = 0

    def __post_init__(self) -> None:
        if self.max_size < 1 or self.max_wait_ms < 0:
            raise ValueError("batch size must be at least 1 and the wait not negative")


@dataclass(frozen=True, slots=True)
class PartialOptions:
    """How much of this worker's model time partials may have: ``share`` of each second, in
    bursts of up to ``burst_s``. Under load a partial decode takes the CPU that the next final
    needs (at 8 streams on 2 cores, partials took 0.9 of the 1.9 busy cores); past the share,
    partials wait in their queue (stale ones are skipped there), so they come less often, not
    never, and finals and turns keep their time."""

    share: float = 0.25
    burst_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1 or self.burst_s <= 0:
            raise ValueError("the partials' share must be in (0, 1] and their burst positive")


@dataclass(frozen=True, slots=True)
class _Taken:
    stream: str
    entry_id: bytes
    job: TranscriptionJob
    fields: dict[bytes, bytes]
    attempts: int = 1


class TranscriberWorker(RedisWorker):
    """Consumes final and speculative jobs, then turns, then partials, oldest first, up to
    ``batch.max_size`` at a time; partials that are stale are skipped.

    ``run()`` blocks until ``stop()``; the batch in hand is always finished (warm shutdown).
    """

    kind = "transcriber"

    def __init__(
        self,
        client: redis.Redis,
        model: Transcribes,
        *,
        consumer: str | None = None,
        block_ms: int = 1000,
        batch: BatchOptions | None = None,
        metrics: TranscriberMetrics | None = None,
        recovery: RecoveryOptions | None = None,
        partials: PartialOptions | None = None,
        uploads: TranscribesFiles | None = None,
        live: bool = True,
        languages: LanguageOptions | None = None,
        translates: TranslatesSpeech | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``uploads``: what decodes windows of uploaded recordings (None: this worker takes
        none); ``live``: whether it takes the live jobs (finals, turns, partials; False: a
        transcriber for uploads only); ``clock``: when to look for jobs to take over, and the
        partials' share of model time (tests step it); ``languages``: how a session that asked
        for detection has the language of each piece chosen; ``translates``: what translates
        turns into English for the sessions read in English (None: the translator does)."""
        self.metrics = metrics or TranscriberMetrics(CollectorRegistry())
        super().__init__(client, consumer=consumer, on_redis_error=self.metrics.redis_errors.inc)
        self._model = model
        self._languages = SessionLanguages(client, model, languages or LanguageOptions())
        self._english = (
            EnglishTranslations(client, translates, self.metrics)
            if translates is not None
            else None
        )
        self._block_ms = block_ms
        self._batch = batch or BatchOptions()
        self.recovery = JobRecovery(
            client, self.consumer, recovery or RecoveryOptions(), clock=clock
        )
        self._clock = clock
        share = partials or PartialOptions()
        self._partial_time = TokenBucket(share.share, share.burst_s, now=clock())
        self._uploads = (
            UploadWindows(
                client,
                self.consumer,
                uploads,
                self.metrics,
                recovery or RecoveryOptions(),
                clock=clock,
            )
            if uploads is not None
            else None
        )
        if not live and self._uploads is None:
            raise ValueError("a transcriber that takes no live jobs must take uploads")
        self.live = live
        self._in_hand: list[tuple[str, bytes]] = []
        self._retry: set[bytes] = set()
        self.jobs_done = 0
        self.jobs_skipped = 0

    def waiting_for(self) -> str:
        return f"waiting for jobs (batches of up to {self._batch.max_size})"

    def stopped_with(self) -> str:
        return f"after {self.jobs_done} jobs"

    def recover(self) -> None:
        """After an outage: the consumer groups again (Redis may have come back empty)."""
        try:
            self.prepare()
        except REDIS_DOWN:
            self.metrics.redis_errors.inc()

    def step(self) -> None:
        """Takes over jobs of dead transcribers, waits up to ``block_ms`` for new ones, and
        handles them: finals, then turns, then partials."""
        if not self.live:
            self._step_uploads()
            return
        reliable: dict[str, list[_Taken]] = {stream: [] for stream in RELIABLE_STREAMS}
        partials: list[_Taken] = []
        for reclaimed in self.recovery.reclaim_due():
            taken = self._decode(reclaimed.stream, reclaimed.entry_id, reclaimed.fields)
            if taken is None:
                continue
            taken = replace(taken, attempts=reclaimed.attempts)
            if taken.attempts > self.recovery.options.max_attempts:
                self._dead_letter(taken, "a transcriber died on every attempt at this job")
            else:
                logger.warning("took over job %s (attempt %d)", taken.entry_id, taken.attempts)
                reliable[taken.stream].append(taken)
        uploads = self._uploads
        if uploads is not None:
            uploads.reclaim()
        waiting = any(reliable.values()) or (uploads is not None and uploads.holding)
        partials_wait = self._partial_time.seconds_until(0.0, now=self._clock())
        entries = self._next_entries(block=not waiting, partials_wait_s=partials_wait)
        for stream, entry_id, fields in entries:
            if stream == keys.FILE_JOBS_STREAM and uploads is not None:
                uploads.take(entry_id, fields)
                continue
            taken = self._decode(stream, entry_id, fields)
            if taken is not None:
                reliable.get(stream, partials).append(taken)
        if partials:  # partials are at most once: a lost one is replaced by the next
            self._ack(keys.PARTIAL_JOBS_STREAM, [t.entry_id for t in partials])
        finals, turns = reliable[keys.FINAL_JOBS_STREAM], reliable[keys.TURN_JOBS_STREAM]
        self._in_hand = [(t.stream, t.entry_id) for t in finals + turns]
        try:
            for chunk in _chunks(self._current(finals), self._batch.max_size):
                self._run_batch(chunk, final=True)
            self._ack_done(keys.FINAL_JOBS_STREAM, finals)
            for turn in turns:
                self._settle(turn)
            self._ack_done(keys.TURN_JOBS_STREAM, turns)
        finally:
            self._in_hand = []
            self._retry.clear()
        started = self._clock()
        for chunk in _chunks(self._current(partials), self._batch.max_size):
            self._run_batch(chunk, final=False)
        if partials:
            self._partial_time.spend(self._clock() - started, now=self._clock())
        live = bool(finals or turns or partials)
        if uploads is not None and uploads.holding and not live:
            uploads.run_one()  # one window, then the live queues are looked at again

    def _step_uploads(self) -> None:
        """A transcriber for uploads only: one window at a time."""
        uploads = self._uploads
        assert uploads is not None
        uploads.reclaim()
        if not uploads.holding:
            for _, entry_id, fields in self._read({keys.FILE_JOBS_STREAM: ">"}, 1, self._block_ms):
                uploads.take(entry_id, fields)
        if uploads.holding:
            uploads.run_one()

    def _ack_done(self, stream: str, taken: list[_Taken]) -> None:
        done = [t.entry_id for t in taken if t.entry_id not in self._retry]
        if done:
            self._ack(stream, done)

    def keep_jobs_fresh(self, pipe: redis.client.Pipeline) -> None:
        """For the heartbeat: the final jobs in hand are not idle, whatever the model takes."""
        self.recovery.keep_fresh(pipe, list(self._in_hand))
        if self._uploads is not None:
            self._uploads.keep_fresh(pipe)

    def _decode(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> _Taken | None:
        try:
            return _Taken(stream, entry_id, TranscriptionJob.decode(fields), fields)
        except SchemaError:
            logger.exception("dropping undecodable job %s from %s", entry_id, stream)
            self.metrics.errors.labels("bad_job").inc()
            self._ack(stream, [entry_id])
            return None

    def _dead_letter(self, taken: _Taken, reason: str) -> None:
        logger.error(
            "job %s (%s utterance %d) failed %d times: dead-lettered",
            taken.entry_id,
            taken.job.session_id,
            taken.job.utterance_index,
            taken.attempts,
        )
        self.metrics.errors.labels("dead_letter").inc()
        self.recovery.dead_letter(
            taken.entry_id, taken.fields, taken.job, reason, stream=taken.stream
        )

    def prepare(self) -> None:
        """Creates the consumer groups and this consumer (idempotent)."""
        for stream in (*RELIABLE_STREAMS, keys.PARTIAL_JOBS_STREAM) if self.live else ():
            ensure_consumer(self._redis, stream, keys.TRANSCRIBER_GROUP, self.consumer)
        if self._uploads is not None:
            self._uploads.prepare()

    def _read(self, streams: dict[str, str], count: int, block_ms: int | None) -> list[StreamEntry]:
        return read_group(
            self._redis,
            keys.TRANSCRIBER_GROUP,
            self.consumer,
            streams,
            count=count,
            block_ms=block_ms,
        )

    def _next_entries(
        self, *, block: bool = True, partials_wait_s: float = 0.0
    ) -> list[StreamEntry]:
        """Finals first, then turns, then partials, then (with no window of an upload in
        hand) uploads: a non-blocking look at each queue, else a blocking read of them all;
        then, if the batch is not full, up to ``max_wait_ms`` more for company. While the
        partials have used their share (``partials_wait_s`` until it is back), only finals and
        turns are read, and the blocking read ends when it is."""
        size = self._batch.max_size
        queues = {keys.FINAL_JOBS_STREAM: ">", keys.TURN_JOBS_STREAM: ">"}
        block_ms = self._block_ms
        if partials_wait_s > 0:
            block_ms = max(1, min(block_ms, int(partials_wait_s * 1000) + 1))
        else:
            queues[keys.PARTIAL_JOBS_STREAM] = ">"
        entries: list[StreamEntry] = []
        for stream in queues:
            if len(entries) < size:
                entries += self._read({stream: ">"}, size - len(entries), None)
        if self._uploads is not None and not self._uploads.holding:
            queues[keys.FILE_JOBS_STREAM] = ">"
            if not entries:  # one window at a time: a live job waits for one at most
                entries = self._read({keys.FILE_JOBS_STREAM: ">"}, 1, None)
        if not entries and block:
            entries = self._read(queues, size, block_ms)
        queues.pop(keys.FILE_JOBS_STREAM, None)  # windows are no company for a batch
        live = [e for e in entries if e[0] != keys.FILE_JOBS_STREAM]
        if live and self._batch.max_wait_ms and len(entries) < size:
            deadline = time.monotonic() + self._batch.max_wait_ms / 1000
            while len(entries) < size:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms < 1:  # BLOCK 0 would wait forever
                    break
                more = self._read(queues, size - len(entries), left_ms)
                if not more:
                    break
                entries += more
        return entries

    def _ack(self, stream: str, entry_ids: list[bytes]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(stream, keys.TRANSCRIBER_GROUP, *entry_ids)
        pipe.xdel(stream, *entry_ids)
        pipe.execute()

    def _current(self, taken: list[_Taken]) -> list[_Taken]:
        current = []
        for item in taken:
            if self._is_current(item.job):
                current.append(item)
            else:
                self.jobs_skipped += 1
                self.metrics.shed.labels(item.job.kind.value).inc()
        return current

    def _is_current(self, job: TranscriptionJob) -> bool:
        state = keys.session_state(job.session_id)
        if job.kind in (JobKind.FINAL, JobKind.TURN):
            return True
        if job.kind is JobKind.PARTIAL:
            utterance, seq = self._redis.hmget(
                state, SessionState.UTTERANCE, SessionState.PARTIAL_SEQ
            )
            return _int(utterance) == job.utterance_index and _int(seq) == job.partial_seq
        commit, (utterance, revision) = self._speculation_state(job)
        if commit is not None:
            return Commit.decode(commit).revision == job.revision
        return _int(utterance) == job.utterance_index and _int(revision) == job.revision

    def _speculation_state(self, job: TranscriptionJob) -> tuple[bytes | None, list[bytes | None]]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(keys.commit_key(job.session_id, job.utterance_index))
        pipe.hmget(
            keys.session_state(job.session_id), SessionState.UTTERANCE, SessionState.REVISION
        )
        commit, state = pipe.execute()
        return commit, state

    def _run_batch(self, taken: list[_Taken], *, final: bool) -> None:
        started = time.time()
        try:
            resolved = [self._languages.resolve(t.job, final=final) for t in taken]
            jobs = [job for job, _ in resolved]
            audio = [UtteranceAudio(j.pcm, j.language, j.speech_ratio, j.vocabulary) for j in jobs]
            transcriptions = self._model.transcribe_batch(audio, final=final)
        except Exception as exc:  # the model failed: each client must hear of it
            if len(taken) > 1:
                logger.exception("a batch of %d failed; retrying one by one", len(taken))
                for one in taken:
                    self._run_batch([one], final=final)
                return
            self._failed(taken[0], exc)
            return
        done = time.time()
        self._observe(jobs, started, done)
        for (job, choice), transcription in zip(resolved, transcriptions, strict=True):
            result = _result(job, transcription, started, done)
            if choice is not None:
                result = _chosen(result, choice)
                self._languages.record(job, choice)
            self._publish(job, result)

    def _settle(self, taken: _Taken) -> None:
        """Decodes a turn with the speaker's recent settled text as prompt; publishes it and,
        if nothing about it looked wrong, makes it the context of the next turn."""
        job = taken.job
        context = keys.turn_context(job.session_id)
        stored: Any = self._redis.hget(context, "text")
        prompt = stored.decode() if isinstance(stored, bytes) else ""
        started = time.time()
        try:
            job, choice = self._languages.resolve(job, final=True)
            settled = self._model.settle_turn(
                TurnAudio(job.pcm, job.language, job.speech_ratio, prompt, job.vocabulary)
            )
        except Exception as exc:  # the model failed: another attempt, or the finals stand
            self._failed(taken, exc)
            return
        done = time.time()
        self._observe([job], started, done)
        if settled.usable:
            result = _result(job, settled.transcription, started, done)
            if choice is not None:
                result = _chosen(result, choice)
                self._languages.record(job, choice)
            turn = TurnTranscript(
                msgspec.structs.replace(result, utterance_index=job.last_utterance),
                job.utterance_index,
                job.first_utterance,
                job.last_utterance,
                False,
                job.endpoint_at,
                withheld=settled.transcription.out_of_language,
            )
        else:
            self.metrics.errors.labels("turn_fallback").inc()
            turn = fallback_turn(job)
        pipe = self._redis.pipeline(transaction=False)
        publish_result(pipe, job.session_id, turn.encode())
        if settled.clean:
            text = prompt_from(f"{prompt} {settled.transcription.text}")
            record = keys.resumable_session(job.session_id)
            pipe.eval(_SET_CONTEXT, 2, context, record, job.utterance_index, text)
        pipe.execute()
        self.jobs_done += 1
        if self._english is not None:
            self._english.after_turn(job, turn)

    def _failed(self, taken: _Taken, exc: Exception) -> None:
        """A partial is dropped; a final is left for another attempt until it has had them
        all, then dead-lettered with an error to its speaker."""
        job = taken.job
        logger.exception(
            "transcription failed for %s utterance %d (attempt %d)",
            job.session_id,
            job.utterance_index,
            taken.attempts,
            exc_info=exc,
        )
        self.metrics.errors.labels("model").inc()
        if job.kind is JobKind.PARTIAL:
            return
        if taken.attempts >= self.recovery.options.max_attempts:
            self._dead_letter(taken, f"transcription failed: {exc}")
        else:
            self._retry.add(taken.entry_id)

    def _observe(self, jobs: list[TranscriptionJob], started: float, done: float) -> None:
        metrics = self.metrics
        metrics.batch_size.observe(len(jobs))
        metrics.audio_seconds.inc(sum(len(j.pcm) for j in jobs) / 2 / PIPELINE_SAMPLE_RATE)
        share = (done - started) / len(jobs)
        for job in jobs:
            metrics.model_seconds.labels(job.kind.value).inc(share)
            metrics.jobs.labels(job.kind.value).inc()
            metrics.queue_wait.labels(job.kind.value).observe(max(0.0, started - job.enqueued_at))

    def _publish(self, job: TranscriptionJob, result: TranscriptResult) -> None:
        channel = keys.session_channel(job.session_id)
        if job.kind is JobKind.PARTIAL:
            self._redis.publish(channel, PartialTranscript(result).encode())
        elif job.kind is JobKind.SPECULATIVE:
            speculation_done(
                self._redis, job.session_id, job.utterance_index, job.revision, result.encode()
            )
        else:
            commit = Commit(
                job.utterance_index, 0, job.endpoint_at, job.enqueued_at, ended_by=job.ended_by
            )
            publish_result(self._redis, job.session_id, FinalTranscript(result, commit).encode())
        self.jobs_done += 1


def _chunks(taken: list[_Taken], size: int) -> list[list[_Taken]]:
    return [taken[i : i + size] for i in range(0, len(taken), size)]


def _result(
    job: TranscriptionJob, transcription: Transcription, started: float, done: float
) -> TranscriptResult:
    offset = job.start_sample / PIPELINE_SAMPLE_RATE
    duration = len(job.pcm) / 2 / PIPELINE_SAMPLE_RATE
    has_text = bool(transcription.text)
    start = transcription.start if has_text else 0.0
    return TranscriptResult(
        session_id=job.session_id,
        utterance_index=job.utterance_index,
        partial_seq=job.partial_seq,
        text=transcription.text,
        start=round(offset + start, 3),
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
        wall_start=round(job.wall_start + start, 3) if job.wall_start else 0.0,
    )


def _chosen(result: TranscriptResult, choice: LanguageChoice) -> TranscriptResult:
    """A detecting session's result with its language as chosen (the decoding was told it)."""
    return msgspec.structs.replace(
        result, language=choice.language, language_probability=choice.probability
    )


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (bytes, str, int)) else None
