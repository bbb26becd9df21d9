"""When to restart a part that died: exponential backoff, reset once it has stayed up.

Pure bookkeeping, no processes: ``LocalPipeline`` asks it what to do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    stable_after_s: float = 60.0
    """A part up this long has recovered: its next death starts the backoff again."""
    max_quick_deaths: int = 5
    """Deaths in a row, each before ``stable_after_s``, after which the part is given up on."""


class GaveUp(Exception):
    pass


@dataclass
class RestartState:
    policy: RestartPolicy
    quick_deaths: int = 0
    restarts: int = 0

    def on_death(self, *, uptime_s: float) -> float:
        """Seconds to wait before the restart; :class:`GaveUp` when it keeps dying."""
        if uptime_s >= self.policy.stable_after_s:
            self.quick_deaths = 0
        self.quick_deaths += 1
        if self.quick_deaths > self.policy.max_quick_deaths:
            raise GaveUp(
                f"died {self.quick_deaths - 1} times in a row within "
                f"{self.policy.stable_after_s:.0f} s of starting"
            )
        self.restarts += 1
        delay = self.policy.first_delay_s * 2 ** (self.quick_deaths - 1)
        return float(min(self.policy.max_delay_s, delay))
