"""The segmenter's part in resuming: a session whose client did not come back in time is
closed once, and one still held (or not resumable) is left alone. Real Redis."""

from __future__ import annotations

import redis

from segmenter.ownership import Ownership
from shared import keys
from shared.schema import AudioAppended, StreamClosed, decode_audio_entry


def audio_entries(client: redis.Redis, session_id: str) -> list[object]:
    entries = client.xrange(keys.audio_stream(session_id))
    return [decode_audio_entry(fields) for _, fields in entries]  # type: ignore[union-attr]


def test_only_a_lapsed_resumable_session_is_closed_and_only_once(
    redis_client: redis.Redis,
) -> None:
    ownership = Ownership(redis_client, "seg-1")
    for sid in ("lapsed", "held", "plain"):
        redis_client.xadd(keys.audio_stream(sid), AudioAppended(b"\0\0", 1.0).encode())  # type: ignore[arg-type]
    for sid in ("lapsed", "held"):
        redis_client.hset(keys.resumable_session(sid), "record", b"{}")
    redis_client.set(keys.attachment("held"), "nonce", ex=60)

    for _ in range(2):
        pipe = redis_client.pipeline(transaction=False)
        ownership.close_abandoned(pipe, ("lapsed", "held", "plain"), now=5.0)
        pipe.execute()

    assert audio_entries(redis_client, "lapsed")[1:] == [StreamClosed("abandoned", 5.0)]
    assert len(audio_entries(redis_client, "held")) == 1
    assert len(audio_entries(redis_client, "plain")) == 1  # not opened through ingest
