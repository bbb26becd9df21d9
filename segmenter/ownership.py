"""Who segments a session, and where another segmenter takes it over from.

The owner holds a lease on the session (renewed by its heartbeat) and writes a checkpoint of
its segmentation state whenever the session is between utterances. Audio entries are kept in
the stream back to the last checkpoint. When an owner dies its leases lapse; another
segmenter claims each orphan, restores the checkpoint and replays the audio after it, so no
audio is dropped; utterances replayed twice give the same utterance index, which the edge
delivers once.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from redis.client import Pipeline

from segmenter.checkpoint import SegmenterCheckpoint
from segmenter.core import IdleState
from segmenter.turns import OpenTurn
from shared import keys
from shared.errors import SchemaError
from shared.redis_client import expire_with_session
from shared.schema import SessionOpened, StreamClosed

LEASE_MS = 6000
"""Three heartbeats: a session is orphaned this long after its owner's last renewal."""
CHECKPOINT_EVERY_S = 5.0
"""Between utterances, how often the checkpoint (and the trimming of the stream) moves on."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


# KEYS: the session's resumable record, its attachment, its audio stream. ARGV: the fields
# of a StreamClosed entry. A session whose client neither came back within the resume window
# nor closed it is closed once, as if the client had said so.
_CLOSE_ABANDONED = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if redis.call('HSETNX', KEYS[1], 'abandoned', '1') == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
redis.call('XADD', KEYS[3], '*', unpack(ARGV))
return 1
"""


def checkpoint_of(opened: SessionOpened, state: IdleState, after_entry: str) -> SegmenterCheckpoint:
    return SegmenterCheckpoint(
        opened=opened,
        after_entry=after_entry,
        position=state.position,
        pending=state.pending,
        recent_pcm=b"".join(pcm for pcm, _ in state.recent),
        recent_speech="".join("1" if speech else "0" for _, speech in state.recent),
        onset="".join("1" if speech else "0" for speech in state.onset),
        utterances=state.utterances_ended,
        turns=state.turns_ended,
        turn=_turn_meta(state.turn),
        turn_pcm=state.turn.pcm if state.turn is not None else b"",
    )


def _turn_meta(turn: OpenTurn | None) -> str:
    if turn is None:
        return ""
    return json.dumps(
        {
            "first": turn.first_utterance,
            "last": turn.last_utterance,
            "start": turn.start_sample,
            "end_bytes": turn.end_bytes,
            "speech": turn.speech_frames,
            "pause": turn.pause_frames,
        }
    )


def _open_turn(meta: str, pcm: bytes) -> OpenTurn | None:
    if not meta:
        return None
    try:
        obj = json.loads(meta)
        numbers = [obj[k] for k in ("first", "last", "start", "end_bytes", "speech", "pause")]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SchemaError(f"bad open turn in checkpoint: {exc}") from exc
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise SchemaError("bad open turn in checkpoint: numbers expected")
    first, last, start, end_bytes, speech, pause = numbers
    return OpenTurn(first, last, start, pcm, end_bytes, speech, pause)


def state_of(checkpoint: SegmenterCheckpoint, frame_bytes: int) -> IdleState:
    frames = [
        checkpoint.recent_pcm[i : i + frame_bytes]
        for i in range(0, len(checkpoint.recent_pcm), frame_bytes)
    ]
    if len(frames) != len(checkpoint.recent_speech):
        raise SchemaError("checkpoint padding frames and speech flags disagree")
    return IdleState(
        position=checkpoint.position,
        pending=checkpoint.pending,
        recent=tuple(zip(frames, (c == "1" for c in checkpoint.recent_speech), strict=True)),
        onset=tuple(c == "1" for c in checkpoint.onset),
        utterances_ended=checkpoint.utterances,
        turns_ended=checkpoint.turns,
        turn=_open_turn(checkpoint.turn, checkpoint.turn_pcm),
    )


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream id as something that sorts like it."""
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


class Ownership:
    def __init__(
        self,
        client: redis.Redis,
        consumer: str,
        *,
        lease_ms: int = LEASE_MS,
        scan_every_s: float = 2.0,
    ) -> None:
        self._redis = client
        self._consumer = consumer
        self._lease_ms = lease_ms
        self._scan_every_s = scan_every_s
        self._next_scan = 0.0

    def claim_new(self, pipe: Pipeline, checkpoint: SegmenterCheckpoint) -> None:
        sid = checkpoint.opened.session_id
        pipe.set(keys.session_owner(sid), self._consumer, px=self._lease_ms)
        pipe.zadd(keys.LIVE_SESSIONS, {sid: checkpoint.opened.opened_at})
        self.save(pipe, checkpoint)

    def save(self, pipe: Pipeline, checkpoint: SegmenterCheckpoint) -> None:
        sid = checkpoint.opened.session_id
        name = keys.session_checkpoint(sid)
        pipe.hset(name, mapping=checkpoint.encode())  # type: ignore[arg-type]
        expire_with_session(pipe, sid, name)
        if checkpoint.after_entry != "0-0":  # what the checkpoint covers is not needed again
            pipe.xtrim(keys.audio_stream(sid), minid=checkpoint.after_entry, approximate=True)

    def renew(self, pipe: Pipeline, session_ids: tuple[str, ...]) -> None:
        for sid in session_ids:
            pipe.eval(_RENEW, 1, keys.session_owner(sid), self._consumer, self._lease_ms)

    def close_abandoned(self, pipe: Pipeline, session_ids: tuple[str, ...], now: float) -> None:
        """Ends the sessions whose client's resume window has passed (audio it sent is
        transcribed; the results wait in the session's log until its keys expire)."""
        closed = StreamClosed("abandoned", now).encode()
        args = [item for pair in closed.items() for item in pair]
        for sid in session_ids:
            pipe.eval(
                _CLOSE_ABANDONED,
                3,
                keys.resumable_session(sid),
                keys.attachment(sid),
                keys.audio_stream(sid),
                *args,
            )

    def release(self, pipe: Pipeline, session_id: str) -> None:
        pipe.delete(keys.session_owner(session_id), keys.session_checkpoint(session_id))
        pipe.zrem(keys.LIVE_SESSIONS, session_id)

    def orphans_due(self, owned: set[str]) -> list[str]:
        """Sessions whose owner's lease lapsed; looked for every ``scan_every_s``."""
        now = time.monotonic()
        if now < self._next_scan:
            return []
        self._next_scan = now + self._scan_every_s
        live = [s.decode() for s in self._redis.zrange(keys.LIVE_SESSIONS, 0, -1)]  # type: ignore[union-attr]
        others = [sid for sid in live if sid not in owned]
        if not others:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for sid in others:
            pipe.exists(keys.session_owner(sid))
        return [sid for sid, held in zip(others, pipe.execute(), strict=True) if not held]

    def try_claim(self, session_id: str) -> SegmenterCheckpoint | None:
        """The orphan's checkpoint if this segmenter won it; None if another did, or if it
        left no checkpoint to carry on from (then it is forgotten)."""
        won = self._redis.set(
            keys.session_owner(session_id), self._consumer, nx=True, px=self._lease_ms
        )
        if not won:
            return None
        fields: Any = self._redis.hgetall(keys.session_checkpoint(session_id))
        try:
            return SegmenterCheckpoint.decode(fields) if fields else None
        except SchemaError:
            return None
        finally:
            if not fields:
                self._redis.zrem(keys.LIVE_SESSIONS, session_id)
