"""Per-node and per-session limits, without I/O."""

from __future__ import annotations

from shared.errors import ProtocolError
from shared.settings import SessionLimits

CLOSE_OVERLOADED = 1013
CLOSE_TIMEOUT = 4008
CLOSE_TOO_FAST = 4029


class AudioRateLimiter:
    """A token bucket over audio seconds: refills at ``max_audio_rate``, holds ``burst``."""

    def __init__(self, limits: SessionLimits, *, now: float) -> None:
        self._rate = limits.max_audio_rate
        self._burst = limits.audio_burst_s
        self._tokens = limits.audio_burst_s
        self._at = now

    def admit(self, audio_s: float, *, now: float) -> None:
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= audio_s
        if self._tokens < 0:
            raise ProtocolError(
                "too_fast",
                f"audio is arriving faster than {self._rate:g}x real time",
                CLOSE_TOO_FAST,
            )


def overloaded() -> ProtocolError:
    return ProtocolError(
        "overloaded",
        "this server has no room for another session; try again later",
        CLOSE_OVERLOADED,
    )


def unavailable() -> ProtocolError:
    return ProtocolError(
        "unavailable",
        "the server cannot reach Redis at the moment; try again later",
        CLOSE_OVERLOADED,
    )


def session_timeout(idle: bool, limits: SessionLimits) -> ProtocolError:
    if idle:
        message = f"nothing received for {limits.idle_timeout_s:g} s (send keepalive)"
    else:
        message = f"the session reached its maximum length of {limits.max_session_s:g} s"
    return ProtocolError("timeout", message, CLOSE_TIMEOUT)
