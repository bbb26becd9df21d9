"""The audio rate limit, without I/O."""

from __future__ import annotations

import pytest

from ingest.limits import AudioRateLimiter, CountRateLimiter, session_timeout
from ingest.options import SessionLimits
from shared.errors import ProtocolError

LIMITS = SessionLimits(max_audio_rate=2.0, audio_burst_s=4.0)


def test_real_time_audio_and_a_burst_within_the_allowance_pass() -> None:
    limiter = AudioRateLimiter(LIMITS, now=0.0)
    for step in range(1, 601):  # 60 s at real time, 100 ms frames
        limiter.admit(0.1, now=step * 0.1)
    limiter.admit(4.0, now=60.1)  # catching up after a stall


def test_audio_beyond_the_rate_is_refused_with_4029() -> None:
    limiter = AudioRateLimiter(LIMITS, now=0.0)
    with pytest.raises(ProtocolError) as caught:
        for step in range(1, 200):  # 3x real time
            limiter.admit(0.3, now=step * 0.1)
    assert caught.value.close_code == 4029 and "faster than 2x" in caught.value.message


def test_timeouts_say_which_limit() -> None:
    assert "keepalive" in session_timeout(LIMITS.idle_timeout_s, LIMITS).message
    assert "maximum length" in session_timeout(None, LIMITS).message
    assert session_timeout(LIMITS.idle_timeout_s, LIMITS).close_code == 4008


def test_control_messages_beyond_their_rate_are_refused_with_4029() -> None:
    limiter = CountRateLimiter(10.0, 20, "messages", now=0.0)
    for step in range(1, 81):  # 10 s, a little under the allowed rate
        limiter.admit(now=step * 0.125)
    for _ in range(19):  # the rest of the burst
        limiter.admit(now=10.0)
    with pytest.raises(ProtocolError) as caught:
        limiter.admit(now=10.0)
    assert caught.value.close_code == 4029 and "10 per second" in caught.value.message
