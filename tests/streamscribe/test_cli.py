"""The ``streamscribe`` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from streamscribe.benchmarks.metrics import normalize
from streamscribe.redis_server import RedisServer, free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up


def streamscribe(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamscribe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_stream_prints_finals_as_they_come_and_the_settled_transcript(
    pipeline: RunningPipeline,
) -> None:
    done = streamscribe(
        "stream", str(DATA / "jfk-inaugural-1961.wav"), "--url", pipeline.url, "--speed", "4"
    )
    assert done.returncode == 0, done.stderr
    assert "ask not what your country can do for you" in normalize(done.stdout)
    live = done.stderr.splitlines()
    finals = [line for line in live if line.startswith("[") and "settled:" not in line]
    settled = [line.split("settled: ", 1)[1] for line in live if "] settled: " in line]
    assert len(finals) >= 2 and len(settled) == 1  # JFK's sentence: several finals, one turn
    assert live.index(finals[-1]) < next(i for i, x in enumerate(live) if "settled:" in x)
    assert done.stdout.strip() == settled[0].strip()  # stdout: the settled text


def test_stream_json_lines(pipeline: RunningPipeline) -> None:
    done = streamscribe(
        "stream",
        str(DATA / "ls-test-clean-1089-134691-0000.wav"),
        "--url",
        pipeline.url,
        "--speed",
        "4",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    import json

    messages = [json.loads(line) for line in done.stdout.splitlines()]
    assert messages[0]["type"] == "session.begin"
    assert messages[-1]["type"] == "session.end"
    assert any(m["type"] == "transcript" and m["is_final"] for m in messages)
    assert any(m["type"] == "turn" for m in messages)


def test_stream_reports_unreadable_files_and_unreachable_servers(tmp_path: object) -> None:
    missing = streamscribe("stream", "/nonexistent/file.wav")
    assert missing.returncode == 3
    assert "cannot read audio file /nonexistent/file.wav" in missing.stderr
    port = free_port()
    unreachable = streamscribe(
        "stream", str(DATA / "jfk-inaugural-1961.wav"), "--url", f"ws://127.0.0.1:{port}/v1/stream"
    )
    assert unreachable.returncode == 3
    assert f"cannot connect to ws://127.0.0.1:{port}/v1/stream" in unreachable.stderr


def test_bad_setting_stops_with_its_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamscribe", "segmenter"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"STREAMSCRIBE_VAD_AGGRESSIVENESS": "7", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "STREAMSCRIBE_VAD_AGGRESSIVENESS" in done.stderr


def test_up_serves_then_stops_everything_it_started(tmp_path: Path) -> None:
    port = free_port()
    alone = {"XDG_RUNTIME_DIR": str(tmp_path)}  # where up says it runs: this test's own
    process = start_up(port, transcribers=1, env=alone)
    children = psutil.Process(process.pid).children(recursive=True)
    names = sorted(" ".join(c.cmdline()[-1:]) for c in children)
    # redis-server, ingest, segmenter, one live transcriber, one for uploads (niced)
    assert len(children) == 5, names
    assert sorted(c.nice() for c in children) == [0, 0, 0, 0, 10]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200
    # `status` alone finds the Redis of the up running here
    status = subprocess.run(
        [sys.executable, "-m", "streamscribe", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if "REDIS_URL" not in k} | alone,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert {p["kind"] for p in json.loads(status.stdout)["parts"]} >= {"ingest", "segmenter"}
    assert stop_up(process) == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not list(tmp_path.rglob("up-*.json"))  # gone with it
    nothing = streamscribe_with({"XDG_RUNTIME_DIR": str(tmp_path)}, "status")
    assert nothing.returncode == 2 and "no streamscribe up is running here" in nothing.stderr


def streamscribe_with(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if "REDIS_URL" not in k}
    return subprocess.run(
        [sys.executable, "-m", "streamscribe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | env,
        check=False,
    )


def test_a_missing_audio_file_is_named_as_missing(tmp_path: Path) -> None:
    for path, words in ((tmp_path / "nope.wav", "does not exist"), (tmp_path, "is a directory")):
        done = streamscribe("stream", str(path), "--url", "ws://127.0.0.1:9/v1/stream")
        assert done.returncode == 3 and words in done.stderr, done.stderr
        assert "System error" not in done.stderr and "Traceback" not in done.stderr


def test_status_piped_into_a_reader_that_stops_early_ends_quietly(
    redis_server: RedisServer,
) -> None:
    status = subprocess.Popen(
        [sys.executable, "-m", "streamscribe", "status", "--json", "--redis-url", redis_server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert status.stdout is not None and status.stderr is not None
    status.stdout.close()  # `| head -c 0`: the reader is gone before status writes
    stderr = status.stderr.read().decode()
    assert status.wait(timeout=60) == 0 and "Traceback" not in stderr, stderr
