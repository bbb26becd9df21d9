"""When ``up`` restarts a part that died (no processes: the policy alone)."""

from __future__ import annotations

import pytest

from streamscribe.supervision import GaveUp, RestartPolicy, RestartState


def test_backoff_doubles_up_to_its_cap_and_resets_after_a_stable_run() -> None:
    state = RestartState(RestartPolicy(first_delay_s=1, max_delay_s=5, max_quick_deaths=10))
    assert [state.on_death(uptime_s=2) for _ in range(5)] == [1, 2, 4, 5, 5]
    assert state.on_death(uptime_s=600) == 1  # it had recovered
    assert state.restarts == 6


def test_a_part_that_keeps_dying_at_once_is_given_up_on() -> None:
    state = RestartState(RestartPolicy(max_quick_deaths=3))
    for _ in range(3):
        state.on_death(uptime_s=0.5)
    with pytest.raises(GaveUp, match="died 3 times in a row"):
        state.on_death(uptime_s=0.5)
