"""The commit/speculation scripts publish a final exactly once, whichever side comes second."""

from __future__ import annotations

import time

import redis

from shared import keys
from shared.redis_client import commit_speculation, speculation_done
from shared.schema import Commit, FinalTranscript, TranscriptResult, decode_event

RESULT = TranscriptResult("s1", 0, 0, "hello", 0.1, 0.9, "en", 1.0)


def published(client: redis.Redis, action: object) -> list[object]:
    pubsub = client.pubsub()
    pubsub.subscribe(keys.session_channel("s1"))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    assert callable(action)
    action()
    events = []
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "message":
            events.append(decode_event(message["data"]))
    pubsub.close()
    return events


def test_result_first_then_commit_publishes_once(redis_client: redis.Redis) -> None:
    commit = Commit(0, 2, 50.0, 50.1)

    def act() -> None:
        assert not speculation_done(redis_client, "s1", 0, 2, RESULT.encode())
        commit_speculation(redis_client, "s1", commit)
        commit_speculation(redis_client, "s1", commit)  # a repeat finds nothing left

    assert published(redis_client, act) == [FinalTranscript(RESULT, commit)]


def test_commit_first_then_result_publishes_once(redis_client: redis.Redis) -> None:
    commit = Commit(0, 2, 50.0, 50.1)

    def act() -> None:
        commit_speculation(redis_client, "s1", commit)
        assert speculation_done(redis_client, "s1", 0, 2, RESULT.encode())

    assert published(redis_client, act) == [FinalTranscript(RESULT, commit)]


def test_result_of_another_revision_is_not_published(redis_client: redis.Redis) -> None:
    def act() -> None:
        commit_speculation(redis_client, "s1", Commit(0, 3, 50.0, 50.1))
        assert not speculation_done(redis_client, "s1", 0, 2, RESULT.encode())

    assert published(redis_client, act) == []
    assert redis_client.ttl(keys.speculation_key("s1", 0, 2)) > 0
