"""Riding out a Redis restart or network blip: backoff between reconnection attempts."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from shared import logger

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""What a lost Redis raises (ConnectionError covers a reset, a refused connection and
'Connection closed by server')."""


def is_lost_group(exc: redis.ResponseError) -> bool:
    """Redis restarted without its data: the consumer group is gone."""
    return str(exc).startswith("NOGROUP")


@dataclass
class Delays:
    """The one retry policy of every part: delays doubling from ``first_s`` up to ``max_s``;
    with ``jitter``, each drawn uniformly below its cap ("full jitter", so that clients that
    failed together do not retry together). Pure: the caller sleeps."""

    first_s: float = 0.25
    max_s: float = 8.0
    jitter: bool = False
    _cap_s: float = 0.0

    def next(self) -> float:
        self._cap_s = min(self.max_s, self._cap_s * 2 if self._cap_s else self.first_s)
        return random.uniform(0.0, self._cap_s) if self.jitter else self._cap_s

    def reset(self) -> None:
        self._cap_s = 0.0


@dataclass
class Backoff:
    """:class:`Delays` for a worker thread: ``wait`` returns early when ``stopping``."""

    delays: Delays = field(default_factory=Delays)
    stopping: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> None:
        self.stopping.wait(self.delays.next())

    def reset(self) -> None:
        self.delays.reset()


def wait_for_redis(client: redis.Redis, backoff: Backoff, what: str) -> bool:
    """Pings until Redis answers (True) or the worker is stopping (False)."""
    logger.warning("%s lost Redis; reconnecting", what, exc_info=True)
    while not backoff.stopping.is_set():
        backoff.wait()
        try:
            client.ping()
        except REDIS_DOWN:
            continue
        logger.info("%s reconnected to Redis", what)
        backoff.reset()
        return True
    return False


def serve(
    step: Callable[[], None],
    *,
    stopping: Callable[[], bool],
    client: redis.Redis,
    backoff: Backoff,
    on_error: Callable[[], None],
    recover: Callable[[], None],
    name: str,
) -> None:
    """Calls ``step`` until ``stopping()``; when Redis goes away, waits for it with backoff
    and calls ``recover`` (also when Redis came back empty and a consumer group is gone)."""
    while not stopping():
        try:
            step()
        except REDIS_DOWN:
            on_error()
            if wait_for_redis(client, backoff, name):
                recover()
        except redis.ResponseError as exc:
            if not is_lost_group(exc):
                raise
            logger.warning("%s: a consumer group was lost (Redis restarted empty)", name)
            recover()
            backoff.wait()  # never spin if recovering did not help
        else:
            backoff.reset()
