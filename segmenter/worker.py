"""The segmenter worker: claims sessions, runs the pure core over their audio, enqueues jobs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from redis.client import Pipeline

from segmenter import logger
from segmenter.core import (
    PartialReady,
    SegmenterEvent,
    SpeculationReady,
    SpeechResumed,
    UtteranceEnded,
    UtteranceSegmenter,
)
from segmenter.metrics import SegmenterMetrics
from segmenter.options import SegmenterOptions
from segmenter.ownership import (
    CHECKPOINT_EVERY_S,
    Ownership,
    checkpoint_of,
    entry_key,
    state_of,
)
from segmenter.turns import TurnEnded
from segmenter.vad import WebRtcSpeechDetector
from segmenter.wall_clock import WallClock
from shared import keys
from shared.audio import PIPELINE_SAMPLE_RATE
from shared.errors import SchemaError
from shared.redis_client import (
    commit_speculation,
    ensure_consumer,
    expire_with_session,
    publish_result,
    read_group,
)
from shared.resilience import REDIS_DOWN
from shared.schema import (
    AudioAppended,
    Commit,
    FinalizeRequested,
    JobKind,
    SegmentationFinished,
    SessionOpened,
    SessionState,
    StreamClosed,
    TranscriptionJob,
    decode_audio_entry,
)
from shared.worker import RedisWorker


@dataclass
class _Session:
    opened: SessionOpened
    segmenter: UtteranceSegmenter
    last_entry: str = "0-0"
    """The last audio entry fed to ``segmenter``."""
    checkpoint_due: bool = False
    """An utterance ended since the last checkpoint."""
    checkpointed_at: float = 0.0
    replayed_until: str | None = None
    """After a takeover: entries up to here were replayed and must not be fed again."""
    clock: WallClock = field(default_factory=WallClock)
    """When the audio fed arrived (the jobs' ``wall_start``)."""


class SegmenterWorker(RedisWorker):
    """One Redis loop over every session this process owns.

    A single blocking ``XREADGROUP`` covers the session announcements and all owned audio
    streams, so new sessions and new audio wake it alike.
    """

    kind = "segmenter"

    def __init__(
        self,
        client: redis.Redis,
        options: SegmenterOptions,
        *,
        consumer: str | None = None,
        block_ms: int = 1000,
        partial_jobs_max: int = 1000,
        metrics: SegmenterMetrics | None = None,
    ) -> None:
        self.metrics = metrics or SegmenterMetrics(CollectorRegistry())
        super().__init__(client, consumer=consumer, on_redis_error=self.metrics.redis_errors.inc)
        self._options = options
        self._block_ms = block_ms
        self._partial_jobs_max = partial_jobs_max
        self._sessions: dict[str, _Session] = {}
        self.ownership = Ownership(client, self.consumer)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def prepare(self) -> None:
        """Creates the session announcements' group and this consumer (idempotent)."""
        ensure_consumer(self._redis, keys.SESSIONS_STREAM, keys.SEGMENTER_GROUP, self.consumer)

    def waiting_for(self) -> str:
        return "waiting for sessions"

    def stopped_with(self) -> str:
        return f"with {len(self._sessions)} sessions"

    def recover(self) -> None:
        """After an outage: recreate the group; drop sessions whose audio stream or group is
        gone (their state went with Redis's data; their ingest node has ended them)."""
        try:
            self.prepare()
            lost = [sid for sid in self._sessions if not self._stream_intact(sid)]
        except REDIS_DOWN:
            self.metrics.redis_errors.inc()
            return
        for sid in lost:
            logger.warning("session %s was lost with Redis's data; dropping it", sid)
            del self._sessions[sid]
        self.metrics.sessions.set(len(self._sessions))

    def _stream_intact(self, session_id: str) -> bool:
        try:
            groups = self._redis.xinfo_groups(keys.audio_stream(session_id))
        except redis.ResponseError:  # no such key
            return False
        return any(
            g["name"] in (keys.SEGMENTER_GROUP, keys.SEGMENTER_GROUP.encode()) for g in groups
        )

    def step(self) -> None:
        """Takes over orphaned sessions, then one blocking read of the session announcements
        and every owned audio stream, and a checkpoint for each session left idle."""
        for session_id in self.ownership.orphans_due(set(self._sessions)):
            self._adopt(session_id)
        streams = {keys.SESSIONS_STREAM: ">"}
        streams.update({keys.audio_stream(sid): ">" for sid in self._sessions})
        entries = read_group(
            self._redis,
            keys.SEGMENTER_GROUP,
            self.consumer,
            streams,
            count=200,
            block_ms=self._block_ms,
        )
        if not entries:
            return
        pipe = self._redis.pipeline(transaction=False)
        done: dict[str, list[bytes]] = {}
        touched: set[str] = set()
        for stream, entry_id, fields in entries:
            if stream == keys.SESSIONS_STREAM:
                self._open(pipe, fields)
            else:
                session_id = stream.split("{", 1)[1].split("}", 1)[0]
                self._process_entry(pipe, session_id, entry_id.decode(), fields)
                touched.add(session_id)
            done.setdefault(stream, []).append(entry_id)
        for stream, ids in done.items():
            pipe.xack(stream, keys.SEGMENTER_GROUP, *ids)
            if stream == keys.SESSIONS_STREAM:  # audio goes when a checkpoint covers it
                pipe.xdel(stream, *ids)
        for session_id in touched:
            self._maybe_checkpoint(pipe, session_id)
        pipe.execute()

    def renew_leases(self, pipe: Pipeline) -> None:
        """For the heartbeat: this segmenter still owns its sessions; those whose client did
        not come back within its resume window are closed."""
        owned = tuple(self._sessions)
        self.ownership.renew(pipe, owned)
        self.ownership.close_abandoned(pipe, owned, time.time())

    def _open(self, pipe: Pipeline, fields: dict[bytes, bytes]) -> None:
        try:
            opened = SessionOpened.decode(fields)
        except SchemaError:
            logger.exception("dropping undecodable session announcement")
            return
        detector = WebRtcSpeechDetector(self._options.vad_aggressiveness)
        session = _Session(opened, UtteranceSegmenter(self._options, detector))
        self._sessions[opened.session_id] = session
        state = session.segmenter.snapshot()
        assert state is not None
        self.ownership.claim_new(pipe, checkpoint_of(opened, state, "0-0"))
        session.checkpointed_at = time.monotonic()
        self.metrics.sessions_opened.inc()
        self.metrics.sessions.set(len(self._sessions))
        logger.info("segmenting session %s", opened.session_id)

    def _adopt(self, session_id: str) -> None:
        """Carries on an orphaned session from its checkpoint, replaying the audio after it."""
        checkpoint = self.ownership.try_claim(session_id)
        if checkpoint is None:
            return
        try:
            state = state_of(checkpoint, self._options.frame_samples * 2)
        except SchemaError:
            logger.exception("session %s left an unreadable checkpoint", session_id)
            return
        detector = WebRtcSpeechDetector(self._options.vad_aggressiveness)
        segmenter = UtteranceSegmenter.restore(self._options, detector, state)
        session = _Session(
            checkpoint.opened,
            segmenter,
            last_entry=checkpoint.after_entry,
            clock=WallClock(first_sample=state.position + len(state.pending) // 2),
        )
        session.checkpointed_at = time.monotonic()
        self._sessions[session_id] = session
        response: Any = self._redis.xrange(
            keys.audio_stream(session_id), min=f"({session.last_entry}"
        )
        replay: list[tuple[bytes, dict[bytes, bytes]]] = list(response or ())
        logger.warning(
            "took over session %s at utterance %d, replaying %d audio entries",
            session_id,
            checkpoint.utterances,
            len(replay),
        )
        pipe = self._redis.pipeline(transaction=False)
        for entry_id, fields in replay:
            self._process_entry(pipe, session_id, entry_id.decode(), fields)
        if replay and session_id in self._sessions:
            session.replayed_until = session.last_entry
            self._maybe_checkpoint(pipe, session_id)
        pipe.execute()
        self.metrics.sessions.set(len(self._sessions))

    def _process_entry(
        self, pipe: Pipeline, session_id: str, entry_id: str, fields: dict[bytes, bytes]
    ) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        replayed = session.replayed_until
        if replayed is not None:
            if entry_key(entry_id) <= entry_key(replayed):
                return  # already fed during the takeover
            session.replayed_until = None  # past the replay: no more comparing
        session.last_entry = entry_id
        self._process(pipe, session_id, fields)

    def _maybe_checkpoint(self, pipe: Pipeline, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        now = time.monotonic()
        if not session.checkpoint_due and now - session.checkpointed_at < CHECKPOINT_EVERY_S:
            return
        state = session.segmenter.snapshot()
        if state is None:  # inside an utterance: the checkpoint waits for its end
            return
        self.ownership.save(pipe, checkpoint_of(session.opened, state, session.last_entry))
        session.checkpoint_due = False
        session.checkpointed_at = now

    def _process(self, pipe: Pipeline, session_id: str, fields: dict[bytes, bytes]) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        try:
            entry = decode_audio_entry(fields)
        except SchemaError:
            logger.exception("dropping undecodable audio entry of session %s", session_id)
            return
        if isinstance(entry, AudioAppended):
            self.metrics.audio_seconds.inc(len(entry.pcm) / 2 / PIPELINE_SAMPLE_RATE)
            session.clock.received(len(entry.pcm) // 2, entry.received_at)
            events = session.segmenter.feed(entry.pcm)
        elif isinstance(entry, FinalizeRequested):
            events = session.segmenter.finalize()
        else:
            events = session.segmenter.flush()
        for event in events:
            self._publish(pipe, session, event, entry.received_at)
        if isinstance(entry, StreamClosed):
            self._close(pipe, session)

    def _publish(
        self, pipe: Pipeline, session: _Session, event: SegmenterEvent, received_at: float
    ) -> None:
        sid = session.opened.session_id
        state = keys.session_state(sid)
        now = time.time()
        if isinstance(event, PartialReady):
            if not session.opened.partials:
                return
            pipe.hset(
                state,
                mapping={
                    SessionState.UTTERANCE: event.utterance_index,
                    SessionState.PARTIAL_SEQ: event.partial_seq,
                },
            )
            job = self._job(
                session,
                JobKind.PARTIAL,
                utterance_index=event.utterance_index,
                start_sample=event.start_sample,
                pcm=event.pcm,
                now=now,
                partial_seq=event.partial_seq,
            )
            pipe.xadd(
                keys.PARTIAL_JOBS_STREAM,
                job.encode(),  # type: ignore[arg-type]
                maxlen=self._partial_jobs_max,
                approximate=True,
            )
        elif isinstance(event, SpeculationReady):
            pipe.hset(
                state,
                mapping={
                    SessionState.UTTERANCE: event.utterance_index,
                    SessionState.REVISION: event.revision,
                },
            )
            job = self._job(
                session,
                JobKind.SPECULATIVE,
                utterance_index=event.utterance_index,
                start_sample=event.start_sample,
                pcm=event.pcm,
                now=now,
                revision=event.revision,
                speech_ratio=event.speech_ratio,
            )
            pipe.xadd(keys.FINAL_JOBS_STREAM, job.encode())  # type: ignore[arg-type]
        elif isinstance(event, SpeechResumed):
            pipe.hset(state, SessionState.REVISION, -1)
        elif isinstance(event, TurnEnded):
            session.checkpoint_due = True
            job = self._job(
                session,
                JobKind.TURN,
                utterance_index=event.turn_index,
                start_sample=event.start_sample,
                pcm=event.pcm,
                now=now,
                speech_ratio=event.speech_ratio,
                endpoint_at=received_at,
                first_utterance=event.first_utterance,
                last_utterance=event.last_utterance,
            )
            pipe.xadd(keys.TURN_JOBS_STREAM, job.encode())  # type: ignore[arg-type]
        elif isinstance(event, UtteranceEnded):
            self.metrics.utterances.inc()
            session.checkpoint_due = True
            pipe.hset(
                state,
                mapping={
                    SessionState.UTTERANCE: event.utterance_index + 1,
                    SessionState.REVISION: -1,
                    SessionState.PARTIAL_SEQ: 0,
                },
            )
            if event.committed_revision is not None:
                commit = Commit(
                    event.utterance_index,
                    event.committed_revision,
                    received_at,
                    now,
                    ended_by=event.reason,
                )
                commit_speculation(pipe, sid, commit)
            else:
                job = self._job(
                    session,
                    JobKind.FINAL,
                    utterance_index=event.utterance_index,
                    start_sample=event.start_sample,
                    pcm=event.pcm,
                    now=now,
                    speech_ratio=event.speech_ratio,
                    endpoint_at=received_at,
                    ended_by=event.reason,
                )
                pipe.xadd(keys.FINAL_JOBS_STREAM, job.encode())  # type: ignore[arg-type]
        expire_with_session(pipe, sid, state)

    def _job(
        self,
        session: _Session,
        kind: JobKind,
        *,
        utterance_index: int,
        start_sample: int,
        pcm: bytes,
        now: float,
        revision: int = 0,
        partial_seq: int = 0,
        speech_ratio: float = 1.0,
        endpoint_at: float = 0.0,
        first_utterance: int = -1,
        last_utterance: int = -1,
        ended_by: str = "",
    ) -> TranscriptionJob:
        self.metrics.jobs.labels(kind.value).inc()
        return TranscriptionJob(
            kind=kind,
            session_id=session.opened.session_id,
            utterance_index=utterance_index,
            revision=revision,
            partial_seq=partial_seq,
            start_sample=start_sample,
            pcm=pcm,
            language=session.opened.language,
            speech_ratio=speech_ratio,
            endpoint_at=endpoint_at,
            enqueued_at=now,
            first_utterance=first_utterance,
            last_utterance=last_utterance,
            vocabulary=session.opened.vocabulary,
            ended_by=ended_by,
            wall_start=round(session.clock.at(start_sample), 3),
        )

    def _close(self, pipe: Pipeline, session: _Session) -> None:
        sid = session.opened.session_id
        finished = SegmentationFinished(
            sid, session.segmenter.utterances_ended, session.segmenter.turns_ended
        )
        publish_result(pipe, sid, finished.encode())
        pipe.delete(keys.audio_stream(sid))
        self.ownership.release(pipe, sid)
        del self._sessions[sid]
        self.metrics.sessions.set(len(self._sessions))
        logger.info(
            "session %s closed after %.1f s of audio, %d utterances",
            sid,
            session.segmenter.position_s,
            finished.utterances,
        )
