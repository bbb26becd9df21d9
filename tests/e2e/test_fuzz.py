"""A protocol fuzzer against a live ingest node: generated hostile query strings, frames and
floods. No crash, no hang, every rejection one of the documented close codes, and a healthy
session streaming throughout is unaffected."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections import Counter
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ingest.protocol import KNOWN_PARAMETERS
from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import StreamRun, read_audio, stream_audio
from tests.conftest import DATA, RunningPipeline

pytestmark = pytest.mark.e2e

DOCUMENTED = {None, 1000, 1003, 1007, 1009, 1013, 4001, 4003, 4008, 4029, 4400, -414}
"""Close codes, and HTTP refusals at the handshake as negatives (414: a request line over
8 KiB, e.g. a query of 5,000-digit values)."""
PARAMETERS = sorted(KNOWN_PARAMETERS)
EXAMPLES = int(os.environ.get("STREAMSCRIBE_FUZZ_SESSIONS", "2000"))
"""CI runs 2,000; the full run (README, Reliability) 10,000."""
HEALTHY = next(
    e for e in load_manifest(DATA / "manifest.jsonl") if e.id == "long-ljspeech-LJ001-0001-0008"
)

junk_text = st.text(max_size=40)
query_values = st.one_of(
    junk_text,
    st.sampled_from(
        [
            "16000",
            "8000",
            "48000",
            "0",
            "-1",
            "1e9",
            "pcm_s16le",
            "pcm_f32le",
            "auto",
            "en",
            "true",
            "false",
            "42",
            "",
            "\x00",
            "%ZZ",
            "x" * 300,
            # numbers that str.isdigit or int() take and the protocol does not
            "\u00b2",
            "\u2460",
            "\uff11\uff16\uff10\uff10\uff10",
            "\u0663",
            "16000.0",
            "+16000",
            " 16000",
            "0x3E80",
            "1" * 5000,
            # control and invisible characters (display names end up in .srt/.vtt cues)
            "Ana\n00:00:01,000 --> 00:00:02,000",
            "\u202eanA",
            "\x1b[31mAna",
            "Ana\x00",
            "\u200b",
        ]
    ),
)
queries = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(PARAMETERS), junk_text), query_values, max_size=5),
    st.fixed_dictionaries(  # float audio, where NaN, infinity and huge samples can go
        {"encoding": st.just("pcm_f32le"), "sample_rate": st.sampled_from(["16000", "48000"])}
    ),
)
commands = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["finalize", "keepalive", "close", "bogus", "", "FINALIZE", None, 7]
            )
        }
    ),
    st.dictionaries(junk_text, st.one_of(junk_text, st.integers(), st.none()), max_size=3),
    st.recursive(
        st.none() | st.integers() | junk_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(junk_text, inner),
        max_leaves=8,
    ),
)
frames = st.one_of(
    st.binary(max_size=640),  # noise, odd and even sample counts, empty (too short to be
    # an utterance: the fuzzer must not turn into a transcription load test)
    st.builds(lambda n: bytes(2 * n + 1), st.integers(0, 2000)),  # half a sample over
    st.builds(lambda n: bytes(2 * n), st.integers(0, 2000)),  # plain silence
    st.just(b"\x00" * 70000),  # over the frame limit
    st.just(b"\x01" * 300000),  # over the WebSocket size limit
    commands.map(json.dumps),
    junk_text,  # not JSON
    st.just("{" * 5000),  # deeply nested garbage
    st.just("x" * 100000),  # huge text
    st.sampled_from(  # what breaks parsers
        [
            "[" * 990 + "]" * 990,
            '{"type": "finalize", "n": ' + "9" * 4400 + "}",
            '{"type": "keepalive", "x": 1e999}',
            '{"type": "keepalive", "x": NaN}',
            '{"type": "\\ud800"}',
            '{"type": "finalize\\u0000"}',
        ]
    ),
    st.sampled_from(  # float samples that are not numbers, or far beyond full scale
        [
            np.full(800, np.nan, np.float32).tobytes(),
            np.full(800, np.inf, np.float32).tobytes(),
            np.tile(np.array([3.4e38, -3.4e38], np.float32), 400).tobytes(),
        ]
    ),
    st.builds(lambda n: ["keepalive-flood", n], st.integers(10, 400)),  # flood of commands
    st.builds(lambda n: ["finalize-flood", n], st.integers(10, 400)),
    st.builds(lambda n: ["audio-flood", n], st.integers(10, 400)),  # flood of audio
)
FLOODS: dict[str, str | bytes] = {
    "keepalive-flood": '{"type": "keepalive"}',
    "finalize-flood": '{"type": "finalize"}',
    "audio-flood": bytes(3200),
}


async def attack(url: str, query: dict[str, str], sequence: list[Any]) -> tuple[int, int | None]:
    """Sends one generated session; returns (inputs sent, the server's close code or None)."""
    target = url + "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
    sent = 1  # the query string itself
    try:
        async with connect(target, max_size=None, open_timeout=10, close_timeout=5) as ws:
            try:
                for frame in sequence:
                    if isinstance(frame, list):
                        kind, count = frame
                        for _ in range(count):
                            await ws.send(FLOODS[kind])
                        sent += count
                    else:
                        await ws.send(frame)
                        sent += 1
                await ws.send('{"type": "close"}')
                # the server may still be transcribing what it got: no need to wait for that
                await asyncio.wait_for(ws.wait_closed(), 1.0)
            except (ConnectionClosed, TimeoutError):
                pass
            if ws.close_code is None:  # still open: everything was accepted
                await ws.close()  # the server must still answer a closing handshake
                return sent, None if ws.close_code == 1000 else ws.close_code
            return sent, ws.close_code
    except InvalidStatus as exc:  # refused at the HTTP handshake: a bad path or origin
        return sent, -exc.response.status_code


def stream_healthy_until(url: str, stop: threading.Event, runs: list[StreamRun]) -> None:
    async def loop() -> None:
        while not stop.is_set():
            runs.append(
                await stream_audio(url, read_audio(HEALTHY.audio), speed=2.0, tail_silence_s=1.0)
            )

    asyncio.run(loop())


def test_ten_thousand_hostile_inputs_harm_nothing(pipeline: RunningPipeline) -> None:
    stop = threading.Event()
    healthy: list[StreamRun] = []
    bystander = threading.Thread(target=stream_healthy_until, args=(pipeline.url, stop, healthy))
    bystander.start()
    inputs = 0
    closes: Counter[int | None] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(query=queries, sequence=st.lists(frames, max_size=6))
    def one_session(query: dict[str, str], sequence: list[Any]) -> None:
        nonlocal inputs
        sent, code = asyncio.run(asyncio.wait_for(attack(pipeline.url, query, sequence), 60))
        inputs += sent
        closes[code] += 1
        assert code in DOCUMENTED, (code, query, sequence[:3])

    try:
        one_session()
    finally:
        stop.set()
        bystander.join(timeout=180)

    print(f"fuzz: {EXAMPLES} sessions, {inputs} inputs, close codes {dict(closes)}")
    assert inputs >= 5 * EXAMPLES
    assert len(closes) >= 5  # the generator reached many different rejections
    with urllib.request.urlopen(f"{pipeline.http}/readyz", timeout=5) as response:
        assert response.status == 200
    assert healthy and all(run.close_code == 1000 and not run.errors for run in healthy)
    for run in healthy:
        assert corpus_wer([HEALTHY.text], [run.transcript]) < 0.15
