"""Publishing a translation, whoever made it (the translator's backends, or a transcriber's
own model): once per turn (or final) and language, to the speaker's session and its room."""

from __future__ import annotations

import redis

from shared import keys
from shared.redis_client import publish_result
from shared.schema import TranslationDone

STATS_KEY = "ss:translator:stats"
"""Translations published, by outcome (``ok``, ``error:<code>``)."""
LATENCY_KEY = "ss:translator:latency"
"""The latest translations' seconds from the text being ready to the translation."""
LATENCY_SAMPLES = 1000


def publish_translation(client: redis.Redis, done: TranslationDone, room: str | None) -> bool:
    """Publishes ``done`` unless a translation of the same turn into the same language has
    been published already (a retried job, a reclaimed one); True if it was published."""
    about = done.utterance_index if done.turn_index < 0 else f"t{done.turn_index}"
    dedup = keys.translation_published(done.session_id, about, done.target_language)
    if not client.set(dedup, b"1", nx=True, ex=keys.TRANSLATION_PUBLISHED_TTL_S):
        return False
    data = done.encode()
    pipe = client.pipeline(transaction=False)
    publish_result(pipe, done.session_id, data)
    if room is not None:
        log = keys.room_log(room)
        pipe.xadd(log, {"e": data}, maxlen=keys.ROOM_LOG_KEPT, approximate=True)
        pipe.expire(log, keys.ROOM_LOG_TTL_S)
        pipe.publish(keys.room_channel(room), data)
    pipe.hincrby(STATS_KEY, f"error:{done.error_code}" if done.error_code else "ok", 1)
    if not done.error_code:
        pipe.lpush(LATENCY_KEY, f"{done.latency_s:.4f}")
        pipe.ltrim(LATENCY_KEY, 0, LATENCY_SAMPLES - 1)
    pipe.execute()
    return True
