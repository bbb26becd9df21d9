"""Resuming (PROTOCOL.md): the ingest node holding clients is killed with kill -9 while they
stream; each resumes on a second node and gets every final once, with no audio lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from websockets.asyncio.client import connect

from shared import keys
from streamscribe.benchmarks.metrics import normalize
from streamscribe.client import StreamRun, read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, wait_until
from tests.e2e.turn_checks import assert_turns_follow_their_finals

pytestmark = pytest.mark.e2e

FILES = [
    "jfk-inaugural-1961.wav",
    "ls-test-clean-1089-134686-0000.wav",
    "ls-test-other-3080-5032-0002.wav",
    "vad-pause-3s-1988-24833-0000-0002.wav",
]


@dataclass(frozen=True)
class IngestNode:
    url: str
    process: subprocess.Popen[bytes]


def start_ingest(redis_url: str, **env: str) -> IngestNode:
    """A standalone ingest node (``streamscribe ingest``) on the pipeline's Redis."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamscribe", "ingest"],
        env={
            **os.environ,
            "STREAMSCRIBE_REDIS_URL": redis_url,
            "STREAMSCRIBE_PORT": str(port),
            "STREAMSCRIBE_MAX_AUDIO_RATE": "8",
            "STREAMSCRIBE_LOG_LEVEL": "WARNING",
            **env,
        },
    )

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:  # not listening yet, or 503
            return False

    if wait_until(ready, 60, every=0.2):
        return IngestNode(f"ws://127.0.0.1:{port}/v1/stream", process)
    process.kill()
    raise RuntimeError("ingest node did not become ready")


@pytest.fixture
def two_nodes(pipeline: RunningPipeline) -> Iterator[tuple[IngestNode, IngestNode]]:
    nodes = (start_ingest(pipeline.redis_url), start_ingest(pipeline.redis_url))
    yield nodes
    for node in nodes:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
            node.process.wait(timeout=30)


def finals(run: StreamRun) -> list[tuple[str, str]]:
    return [(str(f.message.utterance_id), str(f.message.text)) for f in run.finals]


def stream_all(
    first: str, fallback: str, kill: subprocess.Popen[bytes] | None, *, graceful: bool = False
) -> list[StreamRun]:
    async def main() -> list[StreamRun]:
        runs = asyncio.gather(
            *(
                stream_audio(
                    first,
                    read_audio(DATA / name),
                    speed=1.0,
                    tail_silence_s=1.0,
                    fallback_urls=[fallback],
                )
                for name in FILES
            )
        )
        if kill is not None and graceful:
            await asyncio.sleep(4.0)
            kill.send_signal(signal.SIGTERM)  # as a rolling deploy stops a task
        elif kill is not None:
            await asyncio.sleep(4.0)  # mid-utterance for every recording
            # Frozen first: the audio clients send meanwhile reaches the node's socket buffers
            # and dies with it, so it must be sent again after the resume.
            kill.send_signal(signal.SIGSTOP)
            await asyncio.sleep(1.0)
            kill.send_signal(signal.SIGKILL)
        return await runs

    return asyncio.run(main())


def check_nothing_lost_or_doubled(
    fault: str, baseline: list[StreamRun], faulted: list[StreamRun]
) -> float:
    """Every session resumed once and got the unfaulted run's finals, each once, in order;
    returns the seconds of audio sent again."""
    expected = sum(len(finals(run)) for run in baseline)
    received = [final for run in faulted for final in finals(run)]
    ids = [uid for uid, _ in received]
    resent = sum(run.audio_resent_s for run in faulted)
    print(
        f"fault {fault}: {len(FILES)} sessions, finals expected {expected}, "
        f"received {len(received)}, duplicated {len(ids) - len(set(ids))}, "
        f"audio resent {resent:.2f} s, lost {sum(r.audio_lost_s for r in faulted):.2f} s"
    )
    assert len(received) == expected  # 0 lost
    assert len(set(ids)) == len(ids)  # 0 duplicated
    for before, after in zip(baseline, faulted, strict=True):
        assert after.resumes == 1 and after.audio_lost_s == 0
        assert after.close_code == 1000 and not after.errors
        assert [text for _, text in finals(after)] == [text for _, text in finals(before)]
        seqs = [int(r.message["seq"]) for r in after.received]
        assert seqs == sorted(set(seqs))  # every message once, in order
        assert after.received[-1].message["type"] == "session.end"
        messages = [r.message for r in after.received]
        turns_before = assert_turns_follow_their_finals(
            [r.message for r in before.received], before.session_id
        )
        assert assert_turns_follow_their_finals(messages, after.session_id) == turns_before
        assert after.transcript == before.transcript  # the settled text
    return resent


def test_kill_9_the_ingest_node_clients_resume_on_another_losing_and_doubling_nothing(
    two_nodes: tuple[IngestNode, IngestNode],
) -> None:
    node_a, node_b = two_nodes
    baseline = stream_all(node_b.url, node_a.url, kill=None)
    assert all(run.close_code == 1000 and run.resumes == 0 for run in baseline)

    faulted = stream_all(node_a.url, node_b.url, kill=node_a.process)

    assert node_a.process.wait(timeout=10) == -signal.SIGKILL
    resent = check_nothing_lost_or_doubled("kill-9 ingest node", baseline, faulted)
    assert resent >= 0.5 * len(FILES)  # what the frozen node never stored was sent again


def test_an_ingest_node_stopping_hands_its_clients_to_another(
    two_nodes: tuple[IngestNode, IngestNode],
) -> None:
    """SIGTERM (a rolling deploy): the node closes its connections with 1001 and the clients
    resume elsewhere."""
    node_a, node_b = two_nodes
    baseline = stream_all(node_b.url, node_a.url, kill=None)
    faulted = stream_all(node_a.url, node_b.url, kill=node_a.process, graceful=True)
    assert node_a.process.wait(timeout=30) == 0
    check_nothing_lost_or_doubled("SIGTERM ingest node", baseline, faulted)


async def _open(url: str) -> dict[str, object]:
    """Opens a session, sends a second of audio, and drops the connection without a close."""
    async with connect(url + "?partials=false") as ws:
        begin = json.loads(await ws.recv())
        await ws.send(bytes(16000 * 2))
        await asyncio.sleep(0.5)
        ws.transport.abort()  # no close frame: as when the network goes
    return begin


def test_a_session_nobody_resumes_is_closed_after_the_window_and_its_keys_expire(
    pipeline: RunningPipeline,
) -> None:
    node = start_ingest(pipeline.redis_url, STREAMSCRIBE_RESUME_WINDOW_S="2")
    try:
        begin = asyncio.run(_open(node.url))
        session_id = str(begin["session_id"])
        client = redis.Redis.from_url(pipeline.redis_url)
        assert client.exists(keys.attachment(session_id))
        session_keys = (
            keys.attachment(session_id),
            keys.outbox(session_id),
            keys.resumable_session(session_id),
        )
        wait_until(lambda: not client.exists(*session_keys), 40, every=0.2)
        assert not client.exists(keys.outbox(session_id), keys.resumable_session(session_id))
        assert not client.exists(keys.audio_stream(session_id))  # the segmenter closed it
        assert client.zscore(keys.LIVE_SESSIONS, session_id) is None
        late = asyncio.run(_resume(node.url, str(begin["resume_token"]), 1))
        assert late == (4400, "resume_failed")
    finally:
        node.process.send_signal(signal.SIGTERM)
        node.process.wait(timeout=30)


async def _resume(url: str, token: str, last_seq: int) -> tuple[int | None, str]:
    async with connect(f"{url}?resume={token}&last_seq={last_seq}") as ws:
        message = json.loads(await ws.recv())
        await ws.wait_closed()
        return ws.close_code, str(message.get("code") or message["type"])


def test_resume_refuses_a_wrong_token_and_a_last_seq_from_the_future(
    pipeline: RunningPipeline,
) -> None:
    async def scenario() -> list[tuple[int | None, str]]:
        async with connect(pipeline.url + "?partials=false") as ws:
            begin = json.loads(await ws.recv())
            token = str(begin["resume_token"])
            session_id = str(begin["session_id"])
            forged = session_id + "." + "A" * 32
            outcomes = [
                await _resume(pipeline.url, forged, 0),
                await _resume(pipeline.url, "not-a-token", 0),
                await _resume(pipeline.url, token, 999),
            ]
            await ws.send(json.dumps({"type": "keepalive"}))  # the real client is untouched
            await ws.send(json.dumps({"type": "close"}))
            async for text in ws:
                if json.loads(text)["type"] == "session.end":
                    outcomes.append((1000, "session.end"))
            return outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes[:2] == [(4400, "resume_failed"), (4400, "resume_failed")]
    assert outcomes[2] == (4400, "invalid_parameter")
    assert outcomes[3] == (1000, "session.end")


def test_resuming_an_ended_session_replays_what_was_missed_and_closes(
    pipeline: RunningPipeline,
) -> None:
    async def scenario() -> tuple[list[dict[str, object]], list[dict[str, object]], int | None]:
        audio = read_audio(DATA / "ls-test-clean-1089-134686-0000.wav")
        run = await stream_audio(pipeline.url, audio, speed=4.0, params={"partials": "false"})
        first = [dict(r.message) for r in run.received]
        token = str(first[0]["resume_token"])
        async with connect(f"{pipeline.url}?resume={token}&last_seq=1") as again:
            replayed = [json.loads(text) async for text in again]
            return first, replayed, again.close_code

    first, replayed, code = asyncio.run(scenario())
    assert code == 1000
    assert replayed[0]["type"] == "session.begin" and replayed[0]["resumed"] is True
    assert replayed[1:] == first[1:]  # the same messages, the same numbers
    assert [m["type"] for m in first[1:]][-1] == "session.end"


def test_a_resume_while_the_old_connection_lingers_takes_the_session_from_it(
    pipeline: RunningPipeline,
) -> None:
    """A half-open old connection (the client moved on, the server has not noticed) is
    fenced off: it is closed, and only the new connection's session goes on."""

    async def scenario() -> tuple[int | None, str, list[str]]:
        audio = read_audio(DATA / "ls-test-clean-1089-134691-0000.wav")
        async with connect(pipeline.url + "?partials=false") as old:
            begin = json.loads(await old.recv())
            await old.send(audio.pcm[:32000])
            await asyncio.sleep(0.5)
            token = begin["resume_token"]
            async with connect(f"{pipeline.url}?resume={token}&last_seq=1") as new:
                greeting = json.loads(await new.recv())
                assert greeting["resumed"] is True
                await old.wait_closed()  # the server closes the old one within a renewal
                await new.send(audio.pcm[greeting["samples_received"] * 2 :])
                await new.send(json.dumps({"type": "close"}))
                kinds = [json.loads(text)["type"] async for text in new]
            return old.close_code, old.close_reason, kinds

    code, reason, kinds = asyncio.run(scenario())
    assert (code, reason) == (1000, "the session was resumed on another connection")
    assert kinds[-1] == "session.end" and "transcript" in kinds


def test_a_room_participant_resuming_gets_the_others_finals_it_missed_once(
    pipeline: RunningPipeline,
) -> None:
    """Bo listens in a room while Ana speaks; Bo's connection drops for 10 s; on resuming,
    Bo has each of Ana's finals exactly once, in order, the missed ones from the room's log."""
    room = "resume-room"

    async def listen(
        got: list[dict[str, object]], joined: asyncio.Event, ana_done: asyncio.Event
    ) -> int:
        url = f"{pipeline.url}?room={room}&listen=true&partials=false&name=Bo"
        async with connect(url) as ws:
            begin = json.loads(await ws.recv())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    async for text in ws:
                        got.append(json.loads(text))
                        if got[-1]["type"] == "room.participants":  # Bo is a member now
                            joined.set()
            ws.transport.abort()
        await asyncio.sleep(10)
        last_seq = max(int(str(m["seq"])) for m in got)
        resume = f"{pipeline.url}?resume={begin['resume_token']}&last_seq={last_seq}"
        async with connect(resume) as ws:
            assert json.loads(await ws.recv())["resumed"] is True
            while not ana_done.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        got.append(json.loads(await ws.recv()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):  # anything still on its way
                    async for text in ws:
                        got.append(json.loads(text))
        return last_seq

    async def scenario() -> tuple[StreamRun, list[dict[str, object]], int]:
        got: list[dict[str, object]] = []
        joined, ana_done = asyncio.Event(), asyncio.Event()
        listener = asyncio.create_task(listen(got, joined, ana_done))
        async with asyncio.timeout(30):
            await joined.wait()
        ana = await stream_audio(
            pipeline.url,
            read_audio(DATA / "long-ljspeech-LJ001-0001-0008.wav"),
            speed=2.0,
            tail_silence_s=1.0,
            params={"room": room, "name": "Ana", "partials": "false"},
        )
        ana_done.set()
        return ana, got, await listener

    ana, got, dropped_at = asyncio.run(scenario())
    ana_finals = [str(f.message.utterance_id) for f in ana.finals]
    bo_finals = [
        str(m["utterance_id"])
        for m in got
        if m["type"] == "transcript" and m["is_final"] and m["session_id"] == ana.session_id
    ]
    print(
        f"room resume: Ana {len(ana_finals)} finals, Bo {len(bo_finals)} "
        f"(dropped after seq {dropped_at})"
    )
    assert len(ana_finals) >= 4
    assert bo_finals == ana_finals  # each once, in order, none missing
    seqs = [int(str(m["seq"])) for m in got]
    assert seqs == sorted(set(seqs))
    bo_turns = [str(m["turn_id"]) for m in got if m["type"] == "turn"]
    assert bo_turns == [str(t.message.turn_id) for t in ana.turns]  # missed ones too, once
    assert assert_turns_follow_their_finals(got, ana.session_id) == len(ana.turns) >= 2


def test_the_stream_command_resumes_on_a_fallback_node(
    two_nodes: tuple[IngestNode, IngestNode],
) -> None:
    node_a, node_b = two_nodes
    command = [sys.executable, "-m", "streamscribe", "stream", str(DATA / "jfk-inaugural-1961.wav")]
    command += ["--url", node_a.url, "--fallback-url", node_b.url, "--json"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as streaming:
        time.sleep(5)  # mid-sentence
        node_a.process.send_signal(signal.SIGKILL)
        out, err = streaming.communicate(timeout=120)
    assert streaming.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    finals = [m for m in messages if m["type"] == "transcript" and m["is_final"]]
    assert "resumed 1 time(s)" in err
    assert len({m["utterance_id"] for m in finals}) == len(finals)
    assert "ask not what your country can do for you" in normalize(
        " ".join(m["text"] for m in finals)
    )
    assert messages[-1]["type"] == "session.end"
