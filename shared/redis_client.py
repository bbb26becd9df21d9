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
RESULTS_TTL_S = 3600
"""A results log outlives its last write by this long; whatever it holds by then was
delivered long ago or belongs to a session past its resume window."""


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


# The segmenter commits revision R of utterance U; the transcriber finishes speculation R.
# Whichever comes second publishes the final, so it is published once whatever the order.
# KEYS: commit key, speculation key, session channel, results log.
_LOG_AND_PUBLISH = f"""
local function log_and_publish(event)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', {RESULTS_KEPT}, '*', 'e', event)
  redis.call('EXPIRE', KEYS[4], {RESULTS_TTL_S})
  redis.call('PUBLISH', KEYS[3], event)
end
"""

_COMMIT = (
    _LOG_AND_PUBLISH
    + """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local result = redis.call('GET', KEYS[2])
if result then
  log_and_publish(ARGV[3] .. ARGV[1] .. ARGV[4] .. result .. '}')
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
)

_SPECULATION_DONE = (
    _LOG_AND_PUBLISH
    + """
local commit = redis.call('GET', KEYS[1])
if commit then
  local revision = string.match(commit, '"revision":(%d+)')
  if revision == ARGV[1] then
    log_and_publish(ARGV[3] .. commit .. ARGV[4] .. ARGV[2] .. '}')
    return 1
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[5])
return 0
"""
)


def publish_result(
    client: redis.Redis | redis.client.Pipeline, session_id: str, event: bytes
) -> None:
    """Publishes a session event that must reach the client (a final, a failure, the end of
    segmentation, a translation) and logs it for a connection that resumes later."""
    log = keys.results_log(session_id)
    client.xadd(log, {"e": event}, maxlen=RESULTS_KEPT, approximate=True)
    client.expire(log, RESULTS_TTL_S)
    client.publish(keys.session_channel(session_id), event)


def commit_speculation(
    client: redis.Redis | redis.client.Pipeline, session_id: str, commit: Commit
) -> None:
    """Record the segmenter's decision; publishes the final if the transcription is ready."""
    client.eval(
        _COMMIT,
        4,
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
        4,
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
