"""One timeline for a room, and its history for someone who joins late, through the real
pipeline: each final and turn carries the server's wall clock of its start."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from streamscribe.benchmarks.metrics import load_manifest
from streamscribe.client import StreamRun, read_audio, stream_audio
from tests.conftest import DATA, RunningPipeline
from tests.e2e.room_clients import Listener

pytestmark = pytest.mark.e2e

BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
ANA = BY_ID["jfk-inaugural-1961"]
BEN = BY_ID["ls-test-clean-1089-134686-0000"]
BEN_JOINS_AFTER_S = 5.0
SLACK_S = 1.0
"""How far a wall_start may be from when the client sent that audio (frames, a busy loop)."""


def finals(messages: list[Mapping[str, Any]], speaker: str) -> list[Mapping[str, Any]]:
    return [
        m
        for m in messages
        if m["type"] == "transcript" and m["is_final"] and m["speaker"] == speaker and m["text"]
    ]


def test_speakers_who_joined_apart_share_one_timeline_and_a_late_joiner_gets_the_history(
    pipeline: RunningPipeline,
) -> None:
    room = "timeline-1"

    async def scenario() -> tuple[StreamRun, StreamRun, list[dict[str, Any]]]:
        def speak(entry: Any, name: str, tail_s: float) -> Any:
            return stream_audio(
                pipeline.url,
                read_audio(entry.audio),
                speed=1,
                tail_silence_s=tail_s,
                params={"room": room, "name": name},
            )

        async def ben_later() -> StreamRun:
            await asyncio.sleep(BEN_JOINS_AFTER_S)
            run: StreamRun = await speak(BEN, "Ben", 3.0)
            return run

        both_end = max(ANA.seconds, BEN_JOINS_AFTER_S + BEN.seconds) + 3.0
        ana, ben = await asyncio.gather(speak(ANA, "Ana", both_end - ANA.seconds), ben_later())
        said = {
            m["utterance_id"]
            for run in (ana, ben)
            for m in _messages(run)
            if m["type"] == "transcript" and m["is_final"]
        }
        async with Listener(pipeline.url + f"?room={room}&name=Cy&listen=true") as cy:
            await cy.wait_for(
                lambda heard: said <= {m.get("utterance_id") for m in heard if m.get("history")}
            )
        return ana, ben, cy.messages

    ana, ben, cy = asyncio.run(scenario())
    assert ana.close_code == ben.close_code == 1000
    ana_seen, ben_seen = _messages(ana), _messages(ben)
    for run, name in ((ana, "Ana"), (ben, "Ben")):
        spoken = finals(_messages(run), name)
        assert spoken, name
        for viewer in (ana_seen, ben_seen):  # the speaker's own, and as the other saw them
            for final in finals(viewer, name):
                # when the client sent the audio at start: streamed in real time
                assert abs(final["wall_start"] - (run.started_at + final["start"])) < SLACK_S
    # Ben's stream starts 5 s into Ana's: his first words sort after Ana's first, although
    # counted from his own stream they begin earlier
    ana_first, ben_first = finals(ana_seen, "Ana")[0], finals(ana_seen, "Ben")[0]
    assert ben_first["start"] < ana_first["start"] + BEN_JOINS_AFTER_S
    assert ben_first["wall_start"] > ana_first["wall_start"]
    # turns carry it too
    turns = [m for m in ana_seen if m["type"] == "turn" and m["text"]]
    assert turns and all(m["wall_start"] > 0 for m in turns)

    # Cy joined after both had left: the room's history, marked, the same as it was live
    history = [m for m in cy if m.get("history")]
    live = {m["utterance_id"]: m for m in ana_seen if m["type"] == "transcript" and m["is_final"]}
    history_finals = [m for m in history if m["type"] == "transcript"]
    assert {m["speaker"] for m in history_finals} == {"Ana", "Ben"}
    for m in history_finals:
        assert m["is_final"] and m["text"] == live[m["utterance_id"]]["text"]
        assert m["wall_start"] == live[m["utterance_id"]]["wall_start"]
    history_turns = {m["turn_id"] for m in history if m["type"] == "turn"}
    assert {m["turn_id"] for m in ana_seen + ben_seen if m["type"] == "turn"} <= history_turns
    assert not [m for m in cy if m["type"] == "transcript" and not m.get("history")]
    begin = next(i for i, m in enumerate(cy) if m["type"] == "room.participants")
    assert all(i > begin for i, m in enumerate(cy) if m.get("history"))


def _messages(run: StreamRun) -> list[dict[str, Any]]:
    return [dict(r.message) for r in run.received]
