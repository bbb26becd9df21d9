"""Translations through the running pipeline: ingest -> rq -> translator (boto3) -> room."""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamscribe.benchmarks.metrics import load_manifest, normalize
from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up
from tests.e2e.room_clients import Listener
from tests.translator.fake_services import FakeService, translated

pytestmark = pytest.mark.e2e

BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
JFK = BY_ID["jfk-inaugural-1961"]
ARTIFACTS = Path(__file__).parents[2] / "artifacts"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeService]:
    with FakeService("bedrock") as service:
        yield service


@pytest.fixture(scope="module")
def translating_pipeline(bedrock: FakeService) -> Iterator[str]:
    port = free_port()
    process = start_up(
        port,
        transcribers=2,
        translator=True,
        env={
            "STREAMSCRIBE_BEDROCK_ENDPOINT_URL": bedrock.url,
            "STREAMSCRIBE_BEDROCK_REGION": "eu-west-2",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "secret-example",
        },
    )
    yield f"ws://127.0.0.1:{port}/v1/stream"
    stop_up(process)


def messages_of(run: StreamRun) -> list[tuple[float, dict[str, Any]]]:
    return [(r.at, dict(r.message)) for r in run.received]


def test_turns_are_translated_for_the_speaker_and_the_room(translating_pipeline: str) -> None:
    """Translations are of turns (whole sentences), one per turn, not of the finals in them."""

    async def scenario() -> tuple[StreamRun, list[dict[str, Any]]]:
        async with Listener(translating_pipeline + "?room=tr&name=Ben&listen=true") as ben:
            run = await stream_audio(
                translating_pipeline,
                read_audio(JFK.audio),
                speed=2,
                tail_silence_s=3,
                params={"room": "tr", "name": "Ana", "translate": "cy"},
            )
            wanted = {m["turn_id"] for _, m in messages_of(run) if m["type"] == "translation"}

            def heard_all(heard: list[dict[str, Any]]) -> bool:
                return {m.get("turn_id") for m in heard if m["type"] == "translation"} >= wanted

            await ben.wait_for(heard_all)
        return run, ben.messages

    run, ben = asyncio.run(scenario())
    assert run.close_code == 1000
    assert "ask not what your country can do for you" in normalize(run.transcript)
    turns = {m["turn_id"]: (at, m) for at, m in messages_of(run) if m["type"] == "turn"}
    translations = {
        m["turn_id"]: (at, m) for at, m in messages_of(run) if m["type"] == "translation"
    }
    assert turns and set(translations) == set(turns)
    assert len(turns) < len(run.finals)  # JFK's sentence: several finals, one turn
    latencies = []
    for turn_id, (turn_at, turn) in turns.items():
        at, translation = translations[turn_id]
        assert at >= turn_at
        assert translation["target_language"] == "cy" and translation["source_language"] == "en"
        assert translation["text"] == translated(turn["text"]) and "error" not in translation
        assert translation["utterance_id"] == turn["utterance_ids"][-1]
        latencies.append(at - turn_at)
    heard = [m for m in ben if m["type"] == "translation"]
    assert sorted(m["turn_id"] for m in heard) == sorted(translations)
    assert {m["speaker"] for m in heard} == {"Ana"}
    ARTIFACTS.mkdir(exist_ok=True)
    report = {
        "translation_after_turn_s": {
            "p50": round(statistics.median(latencies), 4),
            "values": [round(x, 4) for x in latencies],
        }
    }
    (ARTIFACTS / "translation-latency.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


def test_without_a_translator_the_client_is_told_once_per_language(
    pipeline: RunningPipeline,
) -> None:
    run = asyncio.run(
        stream_audio(
            pipeline.url,
            read_audio(JFK.audio),
            speed=4,
            tail_silence_s=1,
            params={"translate": "cy,fr"},
        )
    )
    assert run.close_code == 1000
    assert [e["code"] for e in run.errors] == ["translation_unavailable"]
    # each language asked for is told once, as its translation of the first turn, with why
    refused = [r.message for r in run.received if r.message["type"] == "translation"]
    assert sorted(m["target_language"] for m in refused) == ["cy", "fr"]
    assert {m["turn_id"] for m in refused} == {f"{run.session_id}-t0"}
    assert all(m["error"]["code"] == "translation_unavailable" and not m["text"] for m in refused)
    assert (
        "en -> cy" in next(m for m in refused if m["target_language"] == "cy")["error"]["message"]
    )
    assert "ask not what your country can do for you" in normalize(run.transcript)
