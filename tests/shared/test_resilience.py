"""The retry policy (delays, jitter), backoff between reconnection attempts, and telling a
lost group from other errors."""

from __future__ import annotations

import random
import threading
import time

import redis

from shared.resilience import Backoff, Delays, is_lost_group, wait_for_redis


def test_delays_double_to_their_cap_and_start_again_after_a_reset() -> None:
    delays = Delays(first_s=0.25, max_s=1.0)
    assert [delays.next() for _ in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    delays.reset()
    assert delays.next() == 0.25


def test_jittered_delays_stay_under_the_same_caps_and_spread() -> None:
    random.seed(7)
    caps = [0.2, 0.4, 0.8, 1.6, 1.6]
    runs = []
    for _ in range(50):
        delays = Delays(first_s=0.2, max_s=1.6, jitter=True)
        runs.append([delays.next() for _ in caps])
    assert all(0.0 <= d <= cap for run in runs for d, cap in zip(run, caps, strict=True))
    assert len({run[0] for run in runs}) == 50  # no two clients wait alike


def test_a_backoff_stops_waiting_when_stopping() -> None:
    backoff = Backoff(Delays(first_s=600.0, max_s=600.0))
    backoff.stopping.set()
    started = time.monotonic()
    backoff.wait()  # would be 10 minutes
    assert time.monotonic() - started < 60


def test_waiting_for_an_unreachable_redis_ends_when_stopping() -> None:
    backoff = Backoff(Delays(first_s=0.01, max_s=0.02))
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.05)
    stopper = threading.Timer(0.2, backoff.stopping.set)
    stopper.start()
    assert wait_for_redis(unreachable, backoff, "test") is False


def test_a_lost_group_is_recognised() -> None:
    assert is_lost_group(redis.ResponseError("NOGROUP No such key 'x' or consumer group 'g'"))
    assert not is_lost_group(redis.ResponseError("WRONGTYPE Operation against a key"))
