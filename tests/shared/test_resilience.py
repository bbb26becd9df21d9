"""Backoff between reconnection attempts, and telling a lost group from other errors."""

from __future__ import annotations

import threading
import time

import redis

from shared.resilience import Backoff, is_lost_group, wait_for_redis


def test_backoff_doubles_to_its_cap_and_stops_waiting_when_stopping() -> None:
    backoff = Backoff(first_s=0.01, max_s=0.04)
    waits = []
    for _ in range(4):
        started = time.monotonic()
        backoff.wait()
        waits.append(time.monotonic() - started)
    assert waits[0] < waits[1] < waits[2] and waits[3] < 0.1
    backoff.stopping.set()
    started = time.monotonic()
    backoff.wait()
    assert time.monotonic() - started < 0.05


def test_waiting_for_an_unreachable_redis_ends_when_stopping() -> None:
    backoff = Backoff(first_s=0.01, max_s=0.02)
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.05)
    stopper = threading.Timer(0.2, backoff.stopping.set)
    stopper.start()
    assert wait_for_redis(unreachable, backoff, "test") is False


def test_a_lost_group_is_recognised() -> None:
    assert is_lost_group(redis.ResponseError("NOGROUP No such key 'x' or consumer group 'g'"))
    assert not is_lost_group(redis.ResponseError("WRONGTYPE Operation against a key"))
