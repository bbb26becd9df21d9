"""A connection's hold on its session in Redis, so the session outlives the connection.

The holder is fenced by a nonce in the session's attachment key: the outbox and the audio
stream are written only while the nonce is still the holder's, so once a client resumes on
another connection (on any node) the old one can write nothing more. Every message is put in
the outbox before it is sent; what a resumed connection replays comes from there, and what
was published while no node listened comes from the session's results log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgspec
import redis.asyncio

from ingest.protocol import CLOSE_BAD_PARAMETER
from ingest.resume_record import ResumableSession
from shared import keys
from shared.errors import ProtocolError, SchemaError
from shared.schema import TranslationTargets

OUTBOX_MAX_ENTRIES = 20000
"""Safety cap: the outbox is trimmed to what the client has not confirmed long before this."""
KEYS_OUTLIVE_WINDOW_S = 10
"""A session's keys outlive its attachment by this long, so the segmenter (which looks every
two seconds) sees the attachment lapse while the record is still there."""

HOLDER_CHECK = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  return -2
end
if holder ~= ARGV[1] then
  return 0
end
"""
"""Lua prelude of every write a connection makes for its session: KEYS[1] the attachment,
ARGV[1] the writer's nonce; answers -2 (the session's state is gone) or 0 (another connection
holds it) unless the writer still holds the session."""


class Hold(IntEnum):
    """A connection's hold on its session, as a fenced write answers it."""

    GONE = -2
    """The attachment is gone: Redis lost the data, or the window passed unrenewed."""
    SUPERSEDED = 0
    """Another connection took the session over."""
    HELD = 1


_TOKEN = re.compile(r"^(s[A-Za-z0-9]{1,64})\.([A-Za-z0-9_-]{16,128})$")

# KEYS: attachment, outbox, delivered marks. ARGV: nonce, ttl, maxlen, then (seq, message,
# next index, finals delivered, mark, next turn, settled until) for each message.
_APPEND_OUTBOX = (
    HOLDER_CHECK
    + """
for i = 4, #ARGV, 7 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], ARGV[i] .. '-0',
             'm', ARGV[i + 1], 'n', ARGV[i + 2], 'f', ARGV[i + 3],
             't', ARGV[i + 5], 'u', ARGV[i + 6])
  if ARGV[i + 4] ~= '' then
    redis.call('SADD', KEYS[3], ARGV[i + 4])
    redis.call('EXPIRE', KEYS[3], ARGV[2])
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""
)

# KEYS: attachment, then the session's other keys. ARGV: nonce, window, keys' ttl.
_RENEW = (
    HOLDER_CHECK
    + """
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = 2, #KEYS do
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return 1
"""
)

# KEYS: attachment. ARGV: nonce, ttl. Takes the session over while the window is open.
_ATTACH = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    message: str
    next_index: int
    """The delivery order's next utterance index once this message is out."""
    finals_delivered: int
    mark: str = ""
    """For a message outside the delivery order (a translation, another participant's final),
    what says it was sent: it is not sent again on a resume."""
    next_turn: int = 0
    """The delivery order's next turn once this message is out."""
    settled_until: int = 0
    """Utterances before this one are settled by turns sent."""


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a resumed connection picks its session up."""

    record: ResumableSession
    samples_stored: int
    """Client samples whose audio is in the pipeline: the client resends what follows."""
    ended: bool
    last_seq: int
    next_index: int
    finals_delivered: int
    next_turn: int
    settled_until: int
    missed: tuple[str, ...]
    """Messages with a seq above the client's ``last_seq``, in order."""
    marks: frozenset[str]
    """Marks of the messages sent outside the delivery order (translations, others' finals)."""


def resume_failed(message: str) -> ProtocolError:
    return ProtocolError("resume_failed", f"resume: {message}", CLOSE_BAD_PARAMETER)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionLink:
    """One connection's hold on a session: create or take over, write the outbox, renew,
    let go. ``window_s``: how long the session waits for its client after the connection
    ends abnormally."""

    def __init__(self, client: redis.asyncio.Redis, session_id: str, *, window_s: float) -> None:
        self._redis = client
        self.session_id = session_id
        self.nonce = secrets.token_hex(8)
        self.window_s = max(1, round(window_s))
        self.hold = Hold.HELD
        self._record: ResumableSession | None = None

    @property
    def _keys_ttl(self) -> int:
        return self.window_s + KEYS_OUTLIVE_WINDOW_S

    def _session_keys(self) -> list[str]:
        sid = self.session_id
        return [
            keys.resumable_session(sid),
            keys.outbox(sid),
            keys.delivered_marks(sid),
            keys.results_log(sid),
            # the parts' keys, which never outlive the session (see shared.redis_client)
            keys.audio_stream(sid),
            keys.session_state(sid),
            keys.session_checkpoint(sid),
            keys.turn_context(sid),
            keys.translation_targets(sid),
        ]

    async def create(self, record: ResumableSession) -> str:
        """Stores the session and takes hold of it; returns the client's resume token."""
        secret = secrets.token_urlsafe(24)
        stored = msgspec.structs.replace(record, secret_sha256=secret_digest(secret))
        pipe = self._redis.pipeline(transaction=True)
        name = keys.resumable_session(self.session_id)
        pipe.hset(name, mapping={"record": stored.encode(), "samples": 0})
        pipe.expire(name, self._keys_ttl)
        pipe.set(keys.attachment(self.session_id), self.nonce, ex=self.window_s)
        await pipe.execute()
        return f"{self.session_id}.{secret}"

    async def set_targets(self, targets: TranslationTargets) -> None:
        """What the session's turns are translated into, for its transcribers."""
        key = keys.translation_targets(self.session_id)
        await self._redis.set(key, targets.encode(), ex=self._keys_ttl)

    @property
    def held(self) -> bool:
        return self.hold is Hold.HELD

    async def append(self, entries: Sequence[OutboxEntry]) -> Hold:
        """Writes messages to the outbox before they are sent, while the session is held."""
        if not self.held:
            return self.hold
        args: list[Any] = [self.nonce, self._keys_ttl, OUTBOX_MAX_ENTRIES]
        for e in entries:
            args += [
                e.seq,
                e.message,
                e.next_index,
                e.finals_delivered,
                e.mark,
                e.next_turn,
                e.settled_until,
            ]
        sid = self.session_id
        held = await self._redis.eval(
            _APPEND_OUTBOX,
            3,
            keys.attachment(sid),
            keys.outbox(sid),
            keys.delivered_marks(sid),
            *args,
        )
        self.hold = Hold(held)
        return self.hold

    def renew(self, pipe: redis.asyncio.client.Pipeline) -> None:
        """Queues the renewal of the hold; the pipeline's answer is a :class:`Hold`."""
        pipe.eval(
            _RENEW,
            1 + len(self._session_keys()),
            keys.attachment(self.session_id),
            *self._session_keys(),
            self.nonce,
            self.window_s,
            self._keys_ttl,
        )

    async def confirmed(self, seq: int) -> None:
        """The client has every message up to ``seq``: the outbox keeps ``seq`` onward (the
        last entry always stays, it carries the delivery state)."""
        await self._redis.xtrim(keys.outbox(self.session_id), minid=f"{seq}-0")

    async def mark_ended(self) -> None:
        await self._redis.hset(keys.resumable_session(self.session_id), "ended", "1")

    async def let_go(self) -> None:
        """The connection is over: the session waits ``window_s`` for a resume, then its keys
        expire (an ended session's too, so a client that missed the end can still get it)."""
        pipe = self._redis.pipeline(transaction=False)
        self.renew(pipe)
        await pipe.execute()

    async def take_over(self, last_seq: int) -> ResumePoint:
        """Takes the session over from whichever connection held it (after ``check_token``)."""
        record = self._record
        if record is None:
            raise RuntimeError("take_over before check_token")
        sid = self.session_id
        await self._check_position(last_seq)  # before taking over: a bad resume harms nothing
        held = await self._redis.eval(_ATTACH, 1, keys.attachment(sid), self.nonce, self.window_s)
        if not held:
            raise resume_failed("the resume window of this session has passed")
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(keys.resumable_session(sid), ["samples", "ended"])
        pipe.xrevrange(keys.outbox(sid), count=1)
        pipe.xrange(keys.outbox(sid), min=f"{last_seq + 1}-0")
        pipe.smembers(keys.delivered_marks(sid))
        (samples, ended), last, missed, marks = await pipe.execute()
        last_id, last_fields = last[0]
        top = _seq(last_id)
        return ResumePoint(
            record=record,
            samples_stored=int(samples or 0),
            ended=ended == b"1",
            last_seq=top,
            next_index=int(last_fields[b"n"]),
            finals_delivered=int(last_fields[b"f"]),
            next_turn=int(last_fields.get(b"t", b"0")),
            settled_until=int(last_fields.get(b"u", b"0")),
            missed=tuple(fields[b"m"].decode() for _, fields in missed),
            marks=frozenset(m.decode() for m in marks),
        )

    async def _check_position(self, last_seq: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xrevrange(keys.outbox(self.session_id), count=1)
        pipe.xrange(keys.outbox(self.session_id), min=f"{last_seq + 1}-0", count=1)
        last, first_missed = await pipe.execute()
        if not last:
            raise resume_failed("nothing of this session is left to resume")
        top = _seq(last[0][0])
        if last_seq > top:
            raise ProtocolError(
                "invalid_parameter", f"last_seq: ahead of the server's {top}", CLOSE_BAD_PARAMETER
            )
        if first_missed and _seq(first_missed[0][0]) != last_seq + 1:
            raise resume_failed(f"messages after seq {last_seq} are no longer kept")

    async def check_token(self, token: str) -> ResumableSession:
        """The stored session, if ``token`` is its resume token."""
        match = _TOKEN.match(token)
        if match is None or match.group(1) != self.session_id:
            raise resume_failed("not a resume token")
        data: bytes | None = await self._redis.hget(  # type: ignore[assignment]
            keys.resumable_session(self.session_id), "record"
        )
        if data is None:
            raise resume_failed("unknown session, or its resume window has passed")
        try:
            record = ResumableSession.decode(data)
        except SchemaError as exc:
            raise resume_failed("the session was stored by an incompatible version") from exc
        if not hmac.compare_digest(record.secret_sha256, secret_digest(match.group(2))):
            raise resume_failed("not this session's resume token")
        self._record = record
        return record


def session_of_token(token: str) -> str:
    """The session a resume token names (checked against the stored secret later)."""
    match = _TOKEN.match(token)
    if match is None:
        raise resume_failed("not a resume token")
    return match.group(1)


async def results_log(client: redis.asyncio.Redis, session_id: str) -> list[bytes]:
    """Every event published for the session still in its log, oldest first."""
    entries: Any = await client.xrange(keys.results_log(session_id))
    return [fields[b"e"] for _, fields in entries]


def _seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])
