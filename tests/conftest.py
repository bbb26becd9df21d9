"""Shared fixtures: a real Redis server and the real pipeline, started by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from streamscribe.redis_server import RedisServer, free_port

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@dataclass(frozen=True)
class RunningPipeline:
    url: str
    http: str
    process: subprocess.Popen[str]
    redis_url: str
    grpc: str = ""
    """The gRPC API's address (``host:port``)."""

    @property
    def pid(self) -> int:
        return self.process.pid


def start_up(
    port: int,
    *,
    transcribers: int = 2,
    translator: bool = False,
    env: dict[str, str] | None = None,
) -> RunningPipeline:
    """``streamscribe up`` exactly as a user runs it (its gRPC API on a free port too);
    returns once it printed its addresses."""
    grpc_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamscribe",
            "up",
            "--port",
            str(port),
            "--transcribers",
            str(transcribers),
            "--grpc-port",
            str(grpc_port),
            *(["--translator"] if translator else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "STREAMSCRIBE_LOG_LEVEL": "WARNING"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    for line in process.stdout:
        if "streamscribe status --redis-url" in line:
            return RunningPipeline(
                url=f"ws://127.0.0.1:{port}/v1/stream",
                http=f"http://127.0.0.1:{port}",
                process=process,
                redis_url=line.rsplit(" ", 1)[1].strip(),
                grpc=f"127.0.0.1:{grpc_port}",
            )
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError(f"streamscribe up did not start (exit {process.poll()})")


def stop_up(pipeline: RunningPipeline) -> int:
    pipeline.process.send_signal(signal.SIGTERM)
    return pipeline.process.wait(timeout=60)


@pytest.fixture(scope="session")
def pipeline() -> Iterator[RunningPipeline]:
    # the tests stream recordings up to 4x real time, beyond the default rate limit
    running = start_up(free_port(), env={"STREAMSCRIBE_MAX_AUDIO_RATE": "8"})
    yield running
    stop_up(running)


def is_ready(pipeline: RunningPipeline) -> bool:
    """Whether ``/readyz`` says a transcriber has its model loaded."""
    try:
        with urllib.request.urlopen(pipeline.http + "/readyz", timeout=5) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float = 30.0, *, every: float = 0.05
) -> bool:
    """Whether ``predicate`` became true within ``timeout`` seconds (checked every ``every``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
