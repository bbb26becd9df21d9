"""Every key of a session goes within the documented time (one resume window plus 10 s
after its last connection), however the session ended: normally, on an error, or abandoned
mid-utterance with the parts still writing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared.redis_client import ORPHAN_TTL_S, SPECULATION_TTL_S
from streamscribe.client import read_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, start_up, stop_up, wait_until

pytestmark = pytest.mark.e2e

WINDOW_S = 2
SPEECH = read_audio(DATA / "ls-test-clean-1089-134691-0000.wav").pcm


@pytest.fixture(scope="module")
def short_window() -> Iterator[RunningPipeline]:
    env = {"STREAMSCRIBE_RESUME_WINDOW_S": str(WINDOW_S), "STREAMSCRIBE_MAX_AUDIO_RATE": "20"}
    running = start_up(free_port(), transcribers=1, env=env)
    yield running
    stop_up(running)


async def session(url: str, ending: str) -> str:
    """Streams a second or two of speech, then ends as ``ending`` says; its session id."""
    async with connect(url) as ws:
        session_id = str(json.loads(await ws.recv())["session_id"])
        for offset in range(0, min(len(SPEECH), 64000), 3200):
            await ws.send(SPEECH[offset : offset + 3200])
        if ending == "close":
            await ws.send('{"type": "close"}')
        elif ending == "error":
            await ws.send(np.zeros(3, np.uint8).tobytes())  # half a sample: 1007
        else:  # abandoned mid-utterance: the connection just drops
            ws.transport.abort()
            return session_id
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
    return session_id


def session_keys(client: redis.Redis, session_id: str) -> list[bytes]:
    """The session's keys but speculations (voided ones expire on their own, in 2 minutes)."""
    return [key for key in client.scan_iter(match=f"ss:{{{session_id}}}:*") if b":spec:" not in key]


def test_no_key_outlives_its_session(short_window: RunningPipeline) -> None:
    async def scenario() -> list[str]:
        endings = ["close", "error", "abandon"] * 10
        return list(await asyncio.gather(*(session(short_window.url, e) for e in endings)))

    client = redis.Redis.from_url(short_window.redis_url)
    try:
        ids = asyncio.run(scenario())
        lives: list[int] = []  # every key's remaining life, each time it is looked at

        def all_gone() -> bool:
            found = [key for sid in ids for key in session_keys(client, sid)]
            # a commit waits (up to 15 min) for its final; once that is out, it expires too
            lives.extend(client.pttl(key) for key in found if b":commit:" not in key)
            return not found

        assert wait_until(all_gone, 90, every=0.5), {sid: session_keys(client, sid) for sid in ids}
        # no key without an expiry, none set beyond its session (ORPHAN_TTL_S: the record's
        # own window and 10 s, or 30 s once the record is gone)
        assert lives and -1 not in lives and max(lives) <= ORPHAN_TTL_S * 1000, max(lives)
        speculations = [k for sid in ids for k in client.scan_iter(match=f"ss:{{{sid}}}:spec:*")]
        assert all(0 < client.ttl(k) <= SPECULATION_TTL_S for k in speculations)
    finally:
        client.close()
