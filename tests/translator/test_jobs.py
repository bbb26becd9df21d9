"""A real rq worker on a real Redis, translating through the real boto3 path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry

from ingest.translations import CharacterBudget, TranslationQueue
from shared import keys
from shared.schema import TranslationDone, TranslationJob, decode_event
from shared.translations import STATS_KEY
from streamscribe.redis_server import RedisServer
from tests.translator.fake_services import FakeService, translated
from translator.backends import BedrockOptions, BedrockTranslator
from translator.worker import TranslatorWorker

QUEUE = "translations-test"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    yield


def job(index: int = 0, target: str = "cy") -> TranslationJob:
    return TranslationJob("s1", "42", "Ana", index, "Ask not.", "en", target, time.time())


def run_jobs(
    redis_server: RedisServer, client: redis.Redis, service: FakeService, jobs: list[TranslationJob]
) -> tuple[list[TranslationDone], list[TranslationDone]]:
    """Enqueues like ingest does, runs a burst worker, returns (session, room) messages."""
    pubsub = client.pubsub()
    pubsub.subscribe(keys.session_channel("s1"), keys.room_channel("42"))
    for _ in range(2):
        pubsub.get_message(timeout=1)
    queue = TranslationQueue(redis_server.url, QUEUE)
    asyncio.run(queue.enqueue(jobs))
    queue.close()
    translator = BedrockTranslator(
        BedrockOptions("amazon.nova-micro-v1:0", "eu-west-2", service.url, 3, 2.0)
    )
    TranslatorWorker(client, translator, QUEUE).run(burst=True)
    session, room = [], []
    while (message := pubsub.get_message(timeout=0.3)) is not None:
        if message["type"] == "message":
            event = decode_event(message["data"])
            assert isinstance(event, TranslationDone)
            (room if b"room" in message["channel"] else session).append(event)
    pubsub.close()
    return session, room


def test_translation_reaches_session_and_room(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    with FakeService("bedrock") as service:
        session, room = run_jobs(redis_server, redis_client, service, [job(0, "cy"), job(0, "fr")])
    assert sorted(d.target_language for d in session) == ["cy", "fr"]
    assert session == room
    assert all(d.text == translated("Ask not.") and not d.error_code for d in session)
    assert redis_client.hget(STATS_KEY, "ok") == b"2"


def test_throttled_twice_then_one_message(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    with FakeService("bedrock", ["throttle", "throttle"]) as service:
        session, _ = run_jobs(redis_server, redis_client, service, [job()])
    assert [d.text for d in session] == [translated("Ask not.")]
    assert len(service.requests) == 3


def test_always_failing_gives_one_error_and_a_failed_job(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    with FakeService("bedrock", ["error"] * 10) as service:
        session, _room = run_jobs(redis_server, redis_client, service, [job(3)])
    [failed] = session
    assert (failed.error_code, failed.utterance_index, failed.target_language) == (
        "InternalServerException",
        3,
        "cy",
    )
    assert failed.text == ""
    registry = FailedJobRegistry(queue=Queue(QUEUE, connection=redis_client))
    assert registry.get_job_ids() == ["translate-s1-3-cy"]
    assert redis_client.hget(STATS_KEY, "error:InternalServerException") == b"1"


def test_a_repeated_job_publishes_once(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    with FakeService("bedrock") as service:
        first, _ = run_jobs(redis_server, redis_client, service, [job(5)])
        again, _ = run_jobs(redis_server, redis_client, service, [job(5)])
    assert len(first) == 1 and again == []


def test_character_budget() -> None:
    budget = CharacterBudget(600, now=0.0)  # 10 characters a second
    assert budget.allow(600, now=0.0)
    assert not budget.allow(1, now=0.0)
    assert budget.allow(100, now=10.0)
    assert not budget.allow(50, now=10.0)
    assert CharacterBudget(0, now=0.0).allow(10**9, now=0.0)  # 0: unlimited


def test_the_job_function_ingest_names_is_the_one_rq_imports() -> None:
    from rq.utils import import_attribute

    from shared import keys
    from translator import jobs

    assert import_attribute(keys.TRANSLATION_JOB_FUNCTION) is jobs.translate
