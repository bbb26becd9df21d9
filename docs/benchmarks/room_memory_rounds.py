"""The 250-listener room of tests/e2e/test_room_presence.py three times against one ``up``:
ingest's RSS and Redis's memory after each round (a leak grows round after round).

Run from the project root: PYTHONPATH=. .venv/bin/python docs/benchmarks/room_memory_rounds.py
"""

from __future__ import annotations

import asyncio
import json
import time

import redis

from streamscribe.client import read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, start_up, stop_up
from tests.e2e.test_room_presence import LISTENERS, join, leave, memory

ROUNDS = 3


async def one_room(url: str, room: str) -> None:
    members = []
    for start in range(0, LISTENERS, 25):  # in waves, as the test has them arrive
        members += await asyncio.gather(
            *(join(url, room, f"L{n}") for n in range(start, start + 25))
        )
    audio = read_audio(DATA / "ls-test-clean-1089-134691-0000.wav")
    await stream_audio(url, audio, speed=4.0, params={"room": room, "name": "Sam"})
    await asyncio.sleep(2)
    await asyncio.gather(*(leave(m) for m in members))


def main() -> None:
    env = {"STREAMSCRIBE_MAX_AUDIO_RATE": "8", "STREAMSCRIBE_RESUME_WINDOW_S": "2"}
    pipeline = start_up(free_port(), env=env)
    client = redis.Redis.from_url(pipeline.redis_url)
    try:
        figures = {"before": memory(pipeline, client)}
        for n in range(1, ROUNDS + 1):
            asyncio.run(one_room(pipeline.url, f"crowd{n}"))
            time.sleep(20)  # past the resume window: the sessions' keys expire
            figures[f"after_room_{n}"] = memory(pipeline, client)
    finally:
        client.close()
        stop_up(pipeline)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
