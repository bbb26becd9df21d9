"""What ``streamscribe stream`` prints for each message (pure: a message in, a line out)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


def console_line(message: Mapping[str, Any], *, in_room: bool) -> str | None:
    """The line for a final, turn, translation or error; None for anything else (partials
    are drawn in place by the caller). In a room every line names its speaker, and carries the
    time of day it was said (``wall_start``), one timeline for everyone; alone, the seconds
    of the stream."""
    kind = message.get("type")
    if kind == "transcript" and message.get("is_final"):
        return f"{_when(message, in_room)} {_who(message, in_room)}{message['text']}"
    if kind == "turn":
        return f"{_when(message, in_room)} {_who(message, in_room)}settled: {message['text']}"
    if kind == "translation":
        text = message.get("text") or f"({message.get('error', {}).get('code')})"
        who = f"{message.get('speaker')}, " if in_room else ""
        return f"  {who}{message['target_language']}: {text}"
    if kind == "error":
        return f"error {message.get('code')}: {message.get('message')}"
    return None


def _when(message: Mapping[str, Any], in_room: bool) -> str:
    wall = message.get("wall_start")
    if in_room and isinstance(wall, int | float) and wall > 0:
        return time.strftime("[%H:%M:%S]", time.localtime(wall))
    return f"[{message['start']:7.2f}-{message['end']:7.2f}]"


def _who(message: Mapping[str, Any], in_room: bool) -> str:
    return f"{message.get('speaker')}: " if in_room else ""
