"""Per-node and per-session limits, without I/O."""

from __future__ import annotations

from ingest.options import SessionLimits
from shared.errors import ProtocolError
from shared.rate import TokenBucket

CLOSE_OVERLOADED = 1013
CLOSE_TIMEOUT = 4008
CLOSE_TOO_FAST = 4029


class AudioRateLimiter:
    """A token bucket over audio seconds: refills at ``max_audio_rate``, holds ``burst``."""

    def __init__(self, limits: SessionLimits, *, now: float) -> None:
        self._bucket = TokenBucket(limits.max_audio_rate, limits.audio_burst_s, now=now)

    def admit(self, audio_s: float, *, now: float) -> None:
        if not self._bucket.spend(audio_s, now=now):
            raise ProtocolError(
                "too_fast",
                f"audio is arriving faster than {self._bucket.rate:g}x real time",
                CLOSE_TOO_FAST,
            )


class CountRateLimiter:
    """A token bucket over things counted one at a time: text messages (``finalize``,
    ``keepalive``...), or audio frames whatever their size (an empty one costs no audio time
    and must still be bounded)."""

    def __init__(self, rate: float, burst: int, what: str, *, now: float) -> None:
        self._bucket = TokenBucket(rate, burst, now=now)
        self._what = what

    def admit(self, *, now: float) -> None:
        if not self._bucket.spend(1, now=now):
            raise ProtocolError(
                "too_fast",
                f"{self._what} are arriving faster than {self._bucket.rate:g} per second",
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


def session_timeout(idle_s: float | None, limits: SessionLimits) -> ProtocolError:
    """``idle_s``: how long the client sent nothing, or None when the session is too long."""
    if idle_s is not None:
        message = f"nothing received for {idle_s:g} s (send keepalive)"
    else:
        message = f"the session reached its maximum length of {limits.max_session_s:g} s"
    return ProtocolError("timeout", message, CLOSE_TIMEOUT)
