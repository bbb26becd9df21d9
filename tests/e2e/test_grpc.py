"""The gRPC API on a running ``up``, driven by a client generated from the .proto alone.

The test generates Python modules from ``proto/streamscribe/v1/transcription.proto`` with
``grpc_tools.protoc`` (as a user of the API would) and runs ``tests/grpc_client`` with only
those on its path: nothing of streamscribe's code is in the client's process.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import read_audio, stream_audio
from tests.conftest import DATA, RunningPipeline, wait_until
from tests.e2e.grpc_clients import client_command, generate_client, run_client

pytestmark = pytest.mark.e2e

RECORDING = "ls-test-clean-1089-134686-0000"
PAUSED = DATA / "vad-pause-3s-1988-24833-0000-0002.wav"
REFERENCES = {e.id: e.text for e in load_manifest(DATA / "manifest.jsonl")}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_client(tmp_path_factory.mktemp("generated-grpc-client"))


def kinds(lines: list[dict[str, Any]]) -> list[str]:
    return [next(k for k in line if k not in ("session_id", "seq")) for line in lines[:-1]]


def finals(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        line["transcript"]
        for line in lines
        if "transcript" in line and line["transcript"].get("is_final")
    ]


def sessions_open(pipeline: RunningPipeline) -> float:
    with urllib.request.urlopen(pipeline.http + "/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("streamscribe_ingest_sessions "):
                return float(line.split()[1])
    raise AssertionError("no sessions gauge")


def test_a_generated_client_streams_a_recording(pipeline: RunningPipeline, generated: Path) -> None:
    lines = run_client(generated, pipeline.grpc, str(DATA / f"{RECORDING}.wav"), "--speed", "4")
    assert lines[-1] == {"status": "OK", "trailing": {"streamscribe-close-code": "1000"}}
    shown = kinds(lines)
    assert shown[0] == "session_begin" and shown[-1] == "session_end"
    assert "turn" in shown
    begin = lines[0]["session_begin"]
    assert (begin["protocol"], begin["sample_rate"], begin["encoding"]) == (1, 16000, "pcm_s16le")
    seqs = [int(line["seq"]) for line in lines[:-1]]
    assert seqs == sorted(set(seqs))
    heard = finals(lines)
    assert heard and all(final["words"] for final in heard)
    assert {final["utterance_id"] for final in heard} == {
        line["transcript"]["utterance_id"] for line in lines if "transcript" in line
    }
    text = " ".join(final["text"] for final in heard)
    assert corpus_wer([REFERENCES[RECORDING]], [text]) < 0.15, text
    assert lines[-2]["session_end"]["utterances"] == len(heard)


def test_the_same_finals_as_protocol_v1(pipeline: RunningPipeline, generated: Path) -> None:
    lines = run_client(
        generated, pipeline.grpc, str(PAUSED), "--speed", "2", "--no-partials", "--send-close"
    )
    over_grpc = [final["text"] for final in finals(lines)]
    v1 = asyncio.run(
        stream_audio(pipeline.url, read_audio(PAUSED), speed=2, params={"partials": "false"})
    )
    over_v1 = [
        m.message["text"]
        for m in v1.received
        if m.message["type"] == "transcript" and m.message["is_final"]
    ]
    assert len(over_grpc) == len(over_v1) >= 2
    assert corpus_wer([" ".join(over_v1)], [" ".join(over_grpc)]) <= 0.05, (over_v1, over_grpc)
    partials = [
        line for line in lines if "transcript" in line and not line["transcript"].get("is_final")
    ]
    assert partials == []


def test_finalize_ends_the_utterance_now(pipeline: RunningPipeline, generated: Path) -> None:
    lines = run_client(
        generated,
        pipeline.grpc,
        str(DATA / f"{RECORDING}.wav"),
        "--speed",
        "2",
        "--finalize-every",
        "30",  # 3 s of audio
    )
    assert lines[-1]["status"] == "OK"
    ended_by = [final["ended_by"] for final in finals(lines)]
    assert "finalize" in ended_by and len(ended_by) >= 2, ended_by


def test_bad_requests_end_the_call_with_a_status(
    pipeline: RunningPipeline, generated: Path
) -> None:
    audio = str(DATA / f"{RECORDING}.wav")
    twice = run_client(generated, pipeline.grpc, audio, "--second-config")
    assert twice[-1] == {
        "status": "INVALID_ARGUMENT",
        "details": "a config after the first request",
        "trailing": {"streamscribe-close-code": "1003", "streamscribe-error": "invalid_message"},
    }
    rate = run_client(generated, pipeline.grpc, audio, "--rate", "99")
    assert len(rate) == 1  # refused before the session began
    assert rate[0]["status"] == "INVALID_ARGUMENT"
    assert rate[0]["details"] == "sample_rate: must be 8000-48000"
    assert rate[0]["trailing"]["streamscribe-error"] == "invalid_parameter"
    french = run_client(generated, pipeline.grpc, audio, "--language", "fr")
    assert french[-1]["details"] == "language: this server's model is English-only"


def test_bad_calls_leave_a_v1_session_alone(pipeline: RunningPipeline, generated: Path) -> None:
    async def both() -> tuple[Any, list[list[dict[str, Any]]]]:
        v1 = asyncio.create_task(
            stream_audio(pipeline.url, read_audio(PAUSED), speed=2, params={"partials": "false"})
        )
        bad = []
        for args in (["--second-config"], ["--rate", "7"], ["--cancel-after", "2"]):
            command, env = client_command(generated, pipeline.grpc, str(PAUSED), *args)
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await process.communicate()
            bad.append([json.loads(line) for line in out.decode().splitlines()])
        return await v1, bad

    v1, bad = asyncio.run(both())
    assert [calls[-1]["status"] for calls in bad] == [
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "CANCELLED by the client",
    ]
    assert v1.close_code == 1000
    assert [m.message["type"] for m in v1.received][-1] == "session.end"


def test_a_cancelled_call_ends_its_session(pipeline: RunningPipeline, generated: Path) -> None:
    lines = run_client(generated, pipeline.grpc, str(PAUSED), "--speed", "1", "--cancel-after", "1")
    assert "session_begin" in lines[0] and lines[-1] == {"status": "CANCELLED by the client"}
    assert wait_until(lambda: sessions_open(pipeline) == 0, timeout=30)


def test_health(pipeline: RunningPipeline, generated: Path) -> None:
    assert run_client(generated, pipeline.grpc, "--health", "") == [{"health": "SERVING"}]
    named = run_client(generated, pipeline.grpc, "--health", "streamscribe.v1.Transcription")
    assert named == [{"health": "SERVING"}]
    unknown = run_client(generated, pipeline.grpc, "--health", "other.Service")
    assert unknown == [{"status": "NOT_FOUND", "details": "unknown service 'other.Service'"}]
