"""What ``streamscribe stream`` prints: alone, stream times; in a room, who and when."""

from __future__ import annotations

import time

from streamscribe.console_lines import console_line

FINAL = {
    "type": "transcript",
    "is_final": True,
    "text": "Bore da.",
    "start": 1.5,
    "end": 2.25,
    "speaker": "Ben",
    "wall_start": 1_700_000_000.0,
}


def test_alone_a_line_has_the_streams_seconds_and_no_name() -> None:
    assert console_line(FINAL, in_room=False) == "[   1.50-   2.25] Bore da."
    turn = {**FINAL, "type": "turn"}
    assert console_line(turn, in_room=False) == "[   1.50-   2.25] settled: Bore da."


def test_in_a_room_each_line_names_its_speaker_and_time_of_day() -> None:
    when = time.strftime("%H:%M:%S", time.localtime(FINAL["wall_start"]))  # type: ignore[arg-type]
    assert console_line(FINAL, in_room=True) == f"[{when}] Ben: Bore da."
    translation = {
        "type": "translation",
        "text": "Good morning.",
        "target_language": "en",
        "speaker": "Ben",
    }
    assert console_line(translation, in_room=True) == "  Ben, en: Good morning."
    refused = {**translation, "text": "", "error": {"code": "unsupported_pair"}}
    assert console_line(refused, in_room=False) == "  en: (unsupported_pair)"


def test_partials_and_other_messages_print_nothing() -> None:
    assert console_line({**FINAL, "is_final": False}, in_room=True) is None
    assert console_line({"type": "status", "lag_s": 0.2}, in_room=True) is None
    assert (
        console_line({"type": "error", "code": "x", "message": "y"}, in_room=True) == "error x: y"
    )
