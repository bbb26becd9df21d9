"""The live-caption page in headless Chromium, with fake microphones, against the real pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from shared.settings import Settings
from streamscribe.benchmarks.bench import offline_transcript
from streamscribe.benchmarks.metrics import ManifestEntry, corpus_wer, load_manifest
from streamscribe.client import read_audio, stream_audio
from streamscribe.options import model_options
from tests.conftest import DATA, RunningPipeline
from transcriber.model import SpeechModel

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
# The fake microphones play every single-utterance recording between them (Ana half, Ben
# half), so the WER bound is held on the same kind of material as the core pipeline tests.
SINGLE = [e for e in BY_ID.values() if e.text and not e.id.startswith("long-")]
ANA = SINGLE[0::2]
BEN = SINGLE[1::2]
DAN = [BY_ID["ls-test-other-3080-5032-0001"]]
GAP_S = 1.0
"""Silence between recordings."""
LEAD_S = 1.0
TAIL_S = 6.0
"""Silence after the last recording: the fake microphone loops its file."""


def seconds(entries: list[ManifestEntry]) -> float:
    return LEAD_S + sum(e.seconds for e in entries) + GAP_S * (len(entries) - 1)


def reference(entries: list[ManifestEntry]) -> str:
    return " ".join(e.text for e in entries)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    with sync_playwright() as p:
        yield p


def launch(
    playwright: Playwright,
    tmp_path: Path,
    entries: list[ManifestEntry] | None,
    *,
    play_s: float = 0.0,
) -> Browser:
    """A browser whose fake microphone plays ``entries`` (1 s apart), then silence up to
    ``play_s`` plus ``TAIL_S``: the fake device loops its file, so every file must outlast the
    test's speaking time."""
    args = [
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]
    if entries:
        # a second of silence first: the fake device starts playing when the page asks for
        # the microphone, before the page's capture graph is running (a person would pause too)
        parts = [np.zeros(int(16000 * LEAD_S), np.int16)]
        for number, entry in enumerate(entries):
            audio, rate = soundfile.read(entry.audio, dtype="int16")
            assert rate == 16000
            gap = (
                TAIL_S + max(0.0, play_s - seconds(entries))
                if number == len(entries) - 1
                else GAP_S
            )
            parts += [audio, np.zeros(int(rate * gap), np.int16)]
        padded = microphone_file(tmp_path, entries)
        soundfile.write(padded, np.concatenate(parts), 16000)
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={padded}",
        ]
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)


def stream_directly(url: str, path: Path) -> str:
    """The Python client, in a thread of its own (Playwright's sync API holds this one's loop)."""

    def run() -> str:
        return asyncio.run(
            stream_audio(
                url, read_audio(path), speed=4, tail_silence_s=1.0, params={"partials": "false"}
            )
        ).transcript

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def microphone_file(tmp_path: Path, entries: list[ManifestEntry]) -> Path:
    return tmp_path / f"{entries[0].id}-and-{len(entries) - 1}-more.wav"


def join(browser: Browser, url: str, room: str, name: str, **page_options: Any) -> Page:
    page = browser.new_page(bypass_csp=True, **page_options)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.fill("#room", room)
    page.fill("#name", name)
    page.click("#join-button")
    page.wait_for_selector("#state[data-state=connected]")
    assert not errors, errors
    return page


def shown(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.evaluate("window.streamscribe.shown")
    return result


def transcript(page: Page) -> list[dict[str, Any]]:
    """What the page shows (and downloads): finals, each replaced by the turn settling it."""
    result: list[dict[str, Any]] = page.evaluate("window.streamscribe.transcript")
    return result


SETTLED = (
    "window.streamscribe.transcript.length > 0"
    " && window.streamscribe.transcript.every(e => e.turn_id)"
)
"""Every line the page shows is a turn: the finals have all been settled."""


def text_of(finals: list[dict[str, Any]], speaker: str) -> str:
    return " ".join(f["text"] for f in finals if f["speaker"] == speaker)


def test_two_speakers_in_a_room_see_each_other_and_another_room_sees_nothing(
    pipeline: RunningPipeline, playwright: Playwright, tmp_path: Path
) -> None:
    page_url = pipeline.http + "/"
    speaking_s = max(seconds(ANA), seconds(BEN), seconds(DAN))
    browsers = [launch(playwright, tmp_path, e, play_s=speaking_s) for e in (ANA, BEN, DAN)]
    microphone_files = [microphone_file(tmp_path, who) for who in (ANA, BEN)]
    try:
        ana = join(browsers[0], page_url, "browser-42", "Ana")
        ben = join(browsers[1], page_url, "browser-42", "Ben")
        dan = join(browsers[2], page_url, "browser-43", "Dan")
        ana.wait_for_function("document.querySelectorAll('#participants li').length === 2")
        for page in (ana, ben, dan):
            page.click("#mic-button")
        time.sleep(speaking_s + 2.5)
        for page in (ana, ben, dan):
            page.click("#mic-button")  # stop: finalize whatever is open
        for page in (ana, ben):
            page.wait_for_function(
                "new Set(window.streamscribe.shown.map(f => f.speaker)).size === 2", timeout=15000
            )
        for page in (ana, ben, dan):
            page.wait_for_function(SETTLED, timeout=20000)
        time.sleep(1.0)
        ARTIFACTS.mkdir(exist_ok=True)
        ana.screenshot(path=str(ARTIFACTS / "browser-room-42-ana.png"), full_page=True)

        ana_finals, ben_finals, dan_finals = transcript(ana), transcript(ben), transcript(dan)
        for finals in (ana_finals, ben_finals):
            assert {f["speaker"] for f in finals} == {"Ana", "Ben"}
            assert text_of(finals, "Ana") and text_of(finals, "Ben")
        assert {f["speaker"] for f in dan_finals} == {"Dan"}
        assert ana.locator("#participants li").all_inner_texts() == ["Ana (you)", "Ben"]

        model = SpeechModel(model_options(Settings()))
        refs = [reference(ANA), reference(BEN)]
        offline = [" ".join(offline_transcript(model, e.audio) for e in who) for who in (ANA, BEN)]
        streamed = [text_of(ana_finals, "Ana"), text_of(ben_finals, "Ben")]
        # the same audio the fake microphones played, streamed by the Python client
        direct = [stream_directly(pipeline.url, path) for path in microphone_files]
        offline_wer, streamed_wer = corpus_wer(refs, offline), corpus_wer(refs, streamed)
        direct_wer = corpus_wer(refs, direct)
        (ARTIFACTS / "browser-texts.json").write_text(
            json.dumps(
                {"references": refs, "offline": offline, "streamed": streamed, "direct": direct},
                indent=1,
            )
        )
        # The browser's capture path (fake device, AudioWorklet resampling) costs no accuracy
        # beyond a few words of segmentation luck against streaming the same audio directly,
        # and stays within the core pipeline's bound or close to the direct stream.
        assert streamed_wer <= max(1.10 * offline_wer + 0.01, direct_wer + 0.015), (
            streamed_wer,
            direct_wer,
            offline_wer,
        )
        # what Ben saw of Ana is what Ana saw of herself
        assert text_of(ben_finals, "Ana") == text_of(ana_finals, "Ana")

        with ana.expect_download() as download:
            ana.click("[data-format=srt]")
        srt = Path(download.value.path()).read_text(encoding="utf-8")
        cues = parse_srt(srt)
        assert [c[0] for c in cues] == list(range(1, len(ana_finals) + 1))
        assert all(start <= end for _, start, end, _ in cues)
        assert [c[1] for c in cues] == sorted(c[1] for c in cues)
        assert {c[3].split(":", 1)[0] for c in cues} == {"Ana", "Ben"}

        latencies = [
            (f["shownAt"] - (page.evaluate("window.streamscribe.audioStartedAt") + f["end"] * 1000))
            / 1000
            for page, name in ((ana, "Ana"), (ben, "Ben"), (dan, "Dan"))
            for f in shown(page)
            if f["speaker"] == name
        ]
        server = [f["serverTiming"] for p in (ana, ben, dan) for f in shown(p) if f["serverTiming"]]
        report = {
            "server_endpoint_to_send_s": [s["endpoint_to_send_s"] for s in server],
            "end_of_speech_to_final_shown_s": {
                "median": round(statistics.median(latencies), 3),
                "values": [round(x, 3) for x in latencies],
            },
            "wer": {
                "browser": round(streamed_wer, 4),
                "direct_websocket": round(direct_wer, 4),
                "offline": round(offline_wer, 4),
            },
        }
        (ARTIFACTS / "browser-latency.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report))
    finally:
        for browser in browsers:
            browser.close()


def parse_srt(text: str) -> list[tuple[int, float, float, str]]:
    cues = []
    for block in text.strip().split("\n\n"):
        number, timing, *lines = block.splitlines()
        match = re.fullmatch(r"(\S+) --> (\S+)", timing)
        assert match, timing
        cues.append((int(number), _srt_seconds(match[1]), _srt_seconds(match[2]), " ".join(lines)))
    return cues


def _srt_seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    seconds, millis = rest.split(",")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def test_streaming_a_file_from_the_page(
    pipeline: RunningPipeline, playwright: Playwright, tmp_path: Path
) -> None:
    browser = launch(playwright, tmp_path, None)
    try:
        page = join(browser, pipeline.http + "/", "file-demo", "Eve")
        page.set_input_files("#file", str(BEN[0].audio))
        page.wait_for_function(
            "window.streamscribe.shown.length > 0 && !window.streamscribe.fileStreaming",
            timeout=int((BEN[0].seconds + 15) * 1000),
        )
        page.wait_for_function(SETTLED, timeout=20000)
        assert corpus_wer([BEN[0].text], [text_of(transcript(page), "Eve")]) < 0.2
        assert page.locator(".line.final").count() == len(transcript(page))
    finally:
        browser.close()


def test_the_page_replaces_a_turns_finals_with_its_settled_text_in_place(
    pipeline: RunningPipeline, playwright: Playwright, tmp_path: Path
) -> None:
    """JFK's sentence comes as three finals (pauses inside it) and one turn: the first final's
    line becomes the turn's, the other two go, and the download holds the turn."""
    jfk = BY_ID["jfk-inaugural-1961"]
    browser = launch(playwright, tmp_path, None)
    try:
        page = join(browser, pipeline.http + "/", "turn-demo", "Hal")
        page.set_input_files("#file", str(jfk.audio))
        first = page.wait_for_selector("#transcript .line.final", timeout=30000)
        assert first is not None
        page.wait_for_function(SETTLED, timeout=int((jfk.seconds + 20) * 1000))
        finals = page.evaluate("window.streamscribe.finals")
        turns = page.evaluate("window.streamscribe.turns")
        assert len(finals) >= 2 and len(turns) >= 1
        lines = page.locator("#transcript .line")
        assert lines.count() == len(transcript(page)) < len(finals)
        assert page.locator("#transcript .line[id^=u-]").count() == 0
        # the node that showed the first final is the one that shows the turn now
        assert first.evaluate("node => node.isConnected && node.id.startsWith('t-')")
        assert first.evaluate("node => node === node.parentNode.firstElementChild")
        settled = text_of(transcript(page), "Hal")
        assert corpus_wer([jfk.text], [settled]) < 0.2
        with page.expect_download() as download:
            page.click("[data-format=json]")
        exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        assert [e["turn_id"] for e in exported["transcript"]] == [t["turn_id"] for t in turns]
    finally:
        browser.close()


def test_phone_width_keyboard_and_error_messages(
    pipeline: RunningPipeline, playwright: Playwright, tmp_path: Path
) -> None:
    browser = launch(playwright, tmp_path, None)  # no fake microphone: access is refused
    try:
        page = browser.new_page(viewport={"width": 360, "height": 740}, bypass_csp=True)
        page.goto(pipeline.http + "/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.focus("#room")
        page.keyboard.press("End")
        page.keyboard.type("7")  # room "427"
        page.keyboard.press("Enter")  # the form submits from the keyboard
        page.wait_for_selector("#state[data-state=connected]")
        assert page.locator("#state").inner_text() == "Connected to room 427"
        page.click("#mic-button")
        page.wait_for_selector("#message:not([hidden])")
        assert "microphone" in page.locator("#message").inner_text().lower()
        page.click("#leave-button")
        page.wait_for_selector("#state[data-state=disconnected]")
        # a server that refuses a setting: the page names it
        page.evaluate("document.getElementById('name').removeAttribute('maxlength')")
        page.fill("#name", "x" * 80)
        page.click("#join-button")
        page.wait_for_selector("#state[data-state=error]")
        assert "name" in page.locator("#message").inner_text()
    finally:
        browser.close()


@pytest.fixture(autouse=True)
def _no_proxy() -> Iterator[None]:
    """Chromium must reach 127.0.0.1 directly."""
    saved = {
        k: os.environ.pop(k)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
        if k in os.environ
    }
    yield
    os.environ.update(saved)


def test_page_reconnects_when_the_server_comes_back(playwright: Playwright, tmp_path: Path) -> None:
    from streamscribe.redis_server import free_port
    from tests.conftest import start_up, stop_up

    port = free_port()
    server = start_up(port, transcribers=1)
    browser = launch(playwright, tmp_path, None)
    try:
        page = join(browser, f"http://127.0.0.1:{port}/", "9", "Flo")
        assert stop_up(server) == 0
        page.wait_for_selector("#state[data-state=reconnecting]", timeout=15000)
        assert "cannot be reached" in page.locator("#message").inner_text()
        server = start_up(port, transcribers=1)
        page.wait_for_selector("#state[data-state=connected]", timeout=30000)
        assert page.locator("#state").inner_text() == "Connected to room 9"
        assert page.locator("#participants li").all_inner_texts() == ["Flo (you)"]
    finally:
        browser.close()
        stop_up(server)


def test_page_resumes_its_session_when_the_ingest_node_is_killed(
    playwright: Playwright, tmp_path: Path
) -> None:
    """kill -9 of the ingest process mid-file: ``up`` restarts it, the page resumes the same
    session on it, and every final arrives once, the audio sent around the drop included."""
    import psutil

    from streamscribe.redis_server import free_port
    from tests.conftest import start_up, stop_up

    port = free_port()
    server = start_up(port, transcribers=1)
    browser = launch(playwright, tmp_path, None)
    jfk = BY_ID["jfk-inaugural-1961"]
    try:
        page = join(browser, f"http://127.0.0.1:{port}/", "resume-demo", "Gus")
        session_id = page.evaluate("window.streamscribe.sessionId")
        (ingest,) = [c for c in psutil.Process(server.pid).children() if "ingest" in c.cmdline()]
        page.set_input_files("#file", str(jfk.audio))
        page.wait_for_timeout(5000)  # mid-sentence
        ingest.kill()
        page.wait_for_selector("#state[data-state=reconnecting]", timeout=15000)
        page.wait_for_function(
            "window.streamscribe.resumes === 1 && !window.streamscribe.fileStreaming",
            timeout=60000,
        )
        page.wait_for_function(
            "window.streamscribe.finals.length > 0 && window.streamscribe.finals.at(-1).end > 10.0",
            timeout=60000,
        )
        page.wait_for_timeout(1500)
        finals = page.evaluate("window.streamscribe.finals")
        assert page.evaluate("window.streamscribe.sessionId") == session_id
        assert page.evaluate("window.streamscribe.finalMessages") == len(finals)
        ids = [f["utterance_id"] for f in finals]
        assert len(ids) == len(set(ids))
        assert corpus_wer([jfk.text], [text_of(finals, "Gus")]) < 0.2
    finally:
        browser.close()
        stop_up(server)


def test_listener_joins_without_a_microphone(
    pipeline: RunningPipeline, playwright: Playwright, tmp_path: Path
) -> None:
    browser = launch(playwright, tmp_path, None)
    try:
        page = browser.new_page(bypass_csp=True)
        page.goto(pipeline.http + "/")
        page.fill("#room", "quiet")
        page.check("#listen")
        page.click("#join-button")
        page.wait_for_selector("#state[data-state=connected]")
        assert page.locator("#mic-button").is_disabled()
        assert page.locator("#file").is_disabled()
        assert page.locator("#participants li").all_inner_texts() == ["anonymous (you) · listening"]
    finally:
        browser.close()
