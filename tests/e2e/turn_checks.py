"""What every client must see of turns, checked on the messages one connection received."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def assert_turns_follow_their_finals(
    messages: Sequence[Mapping[str, Any]], session_id: str | None
) -> int:
    """Each of ``session_id``'s turns comes once, in order, after every final it names; no
    final is named by two turns; returns how many turns came."""
    finals_seen: set[str] = set()
    settled: set[str] = set()
    turn_ids: list[str] = []
    for m in messages:
        if m.get("session_id") != session_id:
            continue
        if m.get("type") == "transcript" and m.get("is_final"):
            finals_seen.add(str(m["utterance_id"]))
        elif m.get("type") == "turn":
            named = {str(u) for u in m["utterance_ids"]}
            assert named <= finals_seen, f"turn {m['turn_id']} before its finals"
            assert not named & settled, f"turn {m['turn_id']} settles a final again"
            settled |= named
            turn_ids.append(str(m["turn_id"]))
    assert len(turn_ids) == len(set(turn_ids)), "a turn came twice"
    numbers = [int(t.rsplit("-t", 1)[1]) for t in turn_ids]
    assert numbers == sorted(numbers), "turns out of order"
    return len(turn_ids)
