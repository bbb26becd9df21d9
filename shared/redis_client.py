"""Redis connections and the two scripts that make a speculative final exactly-once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from shared import keys
from shared.schema import FINAL_ENVELOPE_HEAD, FINAL_ENVELOPE_MIDDLE, Commit

SPECULATION_TTL_S = 120
COMMIT_TTL_S = 900
RESULTS_KEPT = 2000
"""Approximate cap of a session's results log (finals not yet delivered are far fewer)."""
ORPHAN_TTL_S = 30
"""The life of a session key written when the session's record is gone (the session is
over: its client can no longer resume it) or was never made (a part driven alone)."""

# A session's keys live as long as its record (``keys.resumable_session``), whose expiry the
# ingest node holding the session renews, with the results log, context, state and
# checkpoint: a write never extends a key beyond the session, so every key of a finished or
# abandoned session goes one resume window (plus 10 s) after its last connection.
# KEYS[1]: the record.
SESSION_TTL_LUA = f"""
local function session_ttl(record)
  local ttl = redis.call('PTTL', record)
  if ttl > 0 then
    return ttl
  end
  return {ORPHAN_TTL_S * 1000}
end
"""

# KEYS: record, then the keys just written.
_EXPIRE_WITH_SESSION = (
    SESSION_TTL_LUA
    + """
local ttl = session_ttl(KEYS[1])
for i = 2, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ttl)
end
"""
)


def expire_with_session(pipe: redis.client.Pipeline, session_id: str, *names: str) -> None:
    """Queues the expiry of ``names`` (keys of the session just written) with the session."""
    pipe.eval(_EXPIRE_WITH_SESSION, 1 + len(names), keys.resumable_session(session_id), *names)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, health_check_interval=30, socket_keepalive=True)


ASYNC_POOL_CONNECTIONS = 64
"""Connections an asyncio client opens at most; more concurrent commands wait for one."""


def connect_async(url: str) -> redis.asyncio.Redis:
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=ASYNC_POOL_CONNECTIONS,
        timeout=10,
        health_check_interval=30,
        socket_keepalive=True,
    )
    return redis.asyncio.Redis.from_pool(pool)


_LOG_AND_PUBLISH = (
    SESSION_TTL_LUA
    + f"""
local function log_and_publish(event, record, channel, log)
  redis.call('XADD', log, 'MAXLEN', '~', {RESULTS_KEPT}, '*', 'e', event)
  redis.call('PEXPIRE', log, session_ttl(record))
  redis.call('PUBLISH', channel, event)
end
"""
)

# KEYS: record, session channel, results log. ARGV: the event.
_PUBLISH_RESULT = _LOG_AND_PUBLISH + "log_and_publish(ARGV[1], KEYS[1], KEYS[2], KEYS[3])\n"

# The segmenter commits revision R of utterance U; the transcriber finishes speculation R.
# Whichever comes second publishes the final, so it is published once whatever the order.
# KEYS: record, commit key, speculation key, session channel, results log.
_COMMIT = (
    _LOG_AND_PUBLISH
    + """
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local result = redis.call('GET', KEYS[3])
if result then
  log_and_publish(ARGV[3] .. ARGV[1] .. ARGV[4] .. result .. '}', KEYS[1], KEYS[4], KEYS[5])
  redis.call('DEL', KEYS[3])
  redis.call('PEXPIRE', KEYS[2], session_ttl(KEYS[1]))  -- published: kept only to deduplicate
  return 1
end
return 0
"""
)

_SPECULATION_DONE = (
    _LOG_AND_PUBLISH
    + """
local commit = redis.call('GET', KEYS[2])
if commit then
  -- the commit is a Commit's JSON (shared.schema): its revision read as JSON, not by pattern
  if cjson.decode(commit).revision == tonumber(ARGV[1]) then
    log_and_publish(ARGV[3] .. commit .. ARGV[4] .. ARGV[2] .. '}', KEYS[1], KEYS[4], KEYS[5])
    redis.call('PEXPIRE', KEYS[2], session_ttl(KEYS[1]))
    return 1
  end
end
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[5])
return 0
"""
)


def publish_result(
    client: redis.Redis | redis.client.Pipeline, session_id: str, event: bytes
) -> None:
    """Publishes a session event that must reach the client (a final, a failure, the end of
    segmentation, a translation) and logs it for a connection that resumes later."""
    client.eval(
        _PUBLISH_RESULT,
        3,
        keys.resumable_session(session_id),
        keys.session_channel(session_id),
        keys.results_log(session_id),
        event,
    )


def commit_speculation(
    client: redis.Redis | redis.client.Pipeline, session_id: str, commit: Commit
) -> None:
    """Record the segmenter's decision; publishes the final if the transcription is ready."""
    client.eval(
        _COMMIT,
        5,
        keys.resumable_session(session_id),
        keys.commit_key(session_id, commit.utterance_index),
        keys.speculation_key(session_id, commit.utterance_index, commit.revision),
        keys.session_channel(session_id),
        keys.results_log(session_id),
        commit.encode(),
        COMMIT_TTL_S,
        FINAL_ENVELOPE_HEAD,
        FINAL_ENVELOPE_MIDDLE,
    )


def speculation_done(
    client: redis.Redis, session_id: str, utterance_index: int, revision: int, result_json: bytes
) -> bool:
    """Store a speculative result; publishes it as final if the segmenter already committed."""
    published = client.eval(
        _SPECULATION_DONE,
        5,
        keys.resumable_session(session_id),
        keys.commit_key(session_id, utterance_index),
        keys.speculation_key(session_id, utterance_index, revision),
        keys.session_channel(session_id),
        keys.results_log(session_id),
        str(revision),
        result_json,
        FINAL_ENVELOPE_HEAD,
        FINAL_ENVELOPE_MIDDLE,
        SPECULATION_TTL_S,
    )
    return bool(published)


StreamEntry = tuple[str, bytes, dict[bytes, bytes]]
"""(stream name, entry id, fields)"""


def read_group(
    client: redis.Redis,
    group: str,
    consumer: str,
    streams: Mapping[str, str],
    *,
    count: int,
    block_ms: int | None = None,
) -> list[StreamEntry]:
    """``XREADGROUP`` flattened to typed entries, in the order Redis returned them."""
    wanted: dict[Any, Any] = dict(streams)
    response: Any = client.xreadgroup(group, consumer, wanted, count=count, block=block_ms)
    entries: list[StreamEntry] = []
    for stream, stream_entries in response or ():
        name = stream.decode() if isinstance(stream, bytes) else str(stream)
        for entry_id, fields in stream_entries:
            if fields is not None:  # None: deleted while pending
                entries.append((name, entry_id, fields))
    return entries


@dataclass(frozen=True, slots=True)
class QueueStats:
    stream: str
    waiting: int
    """Jobs not yet acknowledged: queued plus in hand (acknowledged jobs are deleted)."""
    oldest_age_s: float
    """Age of the oldest of them by its entry id's clock; 0 when there are none."""


def queue_stats(client: redis.Redis, stream: str, *, now: float) -> QueueStats:
    pipe = client.pipeline(transaction=False)
    pipe.xlen(stream)
    pipe.xrange(stream, count=1)
    length, first = pipe.execute()
    age = 0.0
    if first:
        entry_id = first[0][0]
        millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
        age = max(0.0, now - millis / 1000)
    return QueueStats(stream, int(length), age)


def ensure_consumer(client: redis.Redis, stream: str, group: str, consumer: str) -> None:
    """The stream, its group and this consumer exist afterwards (idempotent; Redis 6.2 needs
    the consumer created explicitly before XAUTOCLAIM and XINFO see it)."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    client.xgroup_createconsumer(stream, group, consumer)
