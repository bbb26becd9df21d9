"""One token bucket, without I/O: the clock is passed in."""

from __future__ import annotations


class TokenBucket:
    """Refills at ``rate`` per second up to ``capacity``; starts full."""

    def __init__(self, rate: float, capacity: float, *, now: float) -> None:
        if rate < 0 or capacity < 0:
            raise ValueError("a token bucket's rate and capacity cannot be negative")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._at = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = max(self._at, now)

    def take(self, amount: float, *, now: float) -> bool:
        """Takes ``amount`` if that much is there."""
        self._refill(now)
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True

    def seconds_until(self, amount: float, *, now: float) -> float:
        """How long until ``amount`` is there (0: now; infinite at a zero rate)."""
        self._refill(now)
        short = amount - self._tokens
        if short <= 0:
            return 0.0
        return short / self.rate if self.rate else float("inf")

    def spend(self, amount: float, *, now: float) -> bool:
        """Takes ``amount`` even into debt (a frame already received counts whole); false once
        the bucket is in debt."""
        self._refill(now)
        self._tokens -= amount
        return self._tokens >= 0
