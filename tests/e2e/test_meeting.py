"""The seed's meeting through ``up --translator`` with the multilingual model: an English
speaker and a Welsh speaker in one room, each reading the other in their own language, and a
third participant reading both in French.

English translations come from the transcribers' own model (Whisper's translate task);
Welsh and French from Bedrock's Converse API (the local stand-in that speaks its wire
format), each once for the room, counted on the stand-in.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from playwright.sync_api import Playwright

from streamscribe.benchmarks.metrics import corpus_wer, load_manifest, normalize
from streamscribe.client import Audio, StreamRun, read_audio, stream_audio
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, is_ready, start_up, stop_up, wait_until
from tests.e2e.room_clients import Listener
from tests.e2e.test_browser import _no_proxy, launch, playwright  # noqa: F401 (fixtures)
from tests.translator.fake_services import FakeService, translated

pytestmark = pytest.mark.e2e

ENGLISH_BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
ENGLISH = ENGLISH_BY_ID["jfk-inaugural-1961"]
WELSH = {e.id: e for e in load_manifest(DATA / "cy" / "manifest.jsonl")}
GWEN_SAYS = ("cy-macsen-001-beth-ywr-tywydd-heddiw", "cy-macsen-001-faint-or-gloch-yw-hi")
"""Two commands, a pause between: two turns of Welsh."""
ROOM = "cyfarfod"
ANA_SAYS = (
    "jfk-inaugural-1961",
    "ls-test-clean-1089-134686-0000",
    "ls-test-clean-1995-1837-0001",
    "ls-dev-clean-1988-24833-0001",
)
ARTIFACTS = Path(__file__).parents[2] / "artifacts"


def welsh_speech(ids: tuple[str, ...] = GWEN_SAYS) -> Audio:
    pause = b"\0\0" * 16000 * 2
    clips = [read_audio(WELSH[i].audio).pcm for i in ids]
    return Audio(pause.join(clips), 16000)


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeService]:
    with FakeService("bedrock") as service:
        yield service


@pytest.fixture(scope="module")
def meeting(bedrock: FakeService) -> Iterator[RunningPipeline]:
    running = start_up(
        free_port(),
        transcribers=2,
        translator=True,
        env={
            "STREAMSCRIBE_MODEL": "base",
            "STREAMSCRIBE_UPLOAD_TRANSCRIBERS": "0",
            # base decodes Welsh slowly: 8 of the 10 recordings go through all six of
            # Whisper's fallback temperatures (39 s of decoding on one thread for their 44 s,
            # 13 s at temperature 0 alone); three sessions at twice real time leave over a
            # minute of turns to settle after their audio ends, past the default 60 s
            "STREAMSCRIBE_CLOSE_TIMEOUT_S": "300",
            "STREAMSCRIBE_BEDROCK_ENDPOINT_URL": bedrock.url,
            "STREAMSCRIBE_BEDROCK_REGION": "eu-west-2",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "secret-example",
        },
    )
    assert wait_until(lambda: is_ready(running), timeout=180), "no transcriber became ready"
    yield running
    stop_up(running)


def received(run: StreamRun) -> list[tuple[float, dict[str, Any]]]:
    return [(r.at, dict(r.message)) for r in run.received]


def own_turns(run: StreamRun) -> dict[str, Mapping[str, Any]]:
    return {
        m["turn_id"]: m
        for _, m in received(run)
        if m["type"] == "turn" and m["session_id"] == run.session_id and m["text"]
    }


def translations(messages: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """By (turn, target language)."""
    return {(m["turn_id"], m["target_language"]): m for m in messages if m["type"] == "translation"}


def test_each_reads_the_other_in_their_own_language_translated_once_for_the_room(
    meeting: RunningPipeline, bedrock: FakeService
) -> None:
    url = meeting.url
    english = _spoken([ENGLISH_BY_ID[i] for i in ANA_SAYS], gap_s=2.0)
    welsh = welsh_speech(tuple(WELSH))
    # Ana stays (silent) after her words until Gwen's last are said and translated: a reader
    # receives what is said while it is in the room
    ana_stays_s = welsh.seconds - english.seconds + 30

    async def scenario() -> tuple[StreamRun, StreamRun, list[dict[str, Any]]]:
        async with Listener(f"{url}?room={ROOM}&name=Fran&listen=true&read=fr") as fran:
            ana, gwen = await asyncio.gather(
                stream_audio(
                    url,
                    english,
                    speed=1,
                    tail_silence_s=ana_stays_s,
                    params={"room": ROOM, "name": "Ana", "language": "en", "read": "en"},
                ),
                stream_audio(
                    url,
                    welsh,
                    speed=1,
                    tail_silence_s=8,
                    params={"room": ROOM, "name": "Gwen", "language": "cy", "read": "cy"},
                ),
            )
            wanted = {(t, "fr") for run in (ana, gwen) for t in own_turns(run)}
            await fran.wait_for(lambda heard: wanted <= set(translations(heard)), timeout_s=60)
        return ana, gwen, fran.messages

    ana, gwen, fran = asyncio.run(scenario())
    assert ana.close_code == gwen.close_code == 1000
    ana_turns, gwen_turns = own_turns(ana), own_turns(gwen)
    assert len(ana_turns) >= 4 and len(gwen_turns) >= 8  # a turn a recording, nearly
    assert "ask not what your country can do for you" in normalize(ana.transcript)
    assert all(t["language"] == "cy" for t in gwen_turns.values())

    # Ana reads English: Gwen's Welsh words, and their English from Whisper itself
    at_ana = translations([m for _, m in received(ana)])
    heard_gwen = {k: v for k, v in at_ana.items() if k[0] in gwen_turns}
    assert set(heard_gwen) == {(t, "en") for t in gwen_turns}
    for translation in heard_gwen.values():
        assert translation["source_language"] == "cy" and "error" not in translation
        assert translation["text"] and not translation["text"].startswith("TRANSLATED[")
    assert not [k for k in at_ana if k[1] != "en"]  # nothing in languages Ana does not read
    assert {m["turn_id"] for _, m in received(ana) if m["type"] == "turn"} >= set(gwen_turns)
    # and each translation after the line it translates
    order = [(m["type"], m.get("turn_id")) for _, m in received(ana)]
    for turn_id in gwen_turns:
        assert order.index(("turn", turn_id)) < order.index(("translation", turn_id))

    # Gwen reads Welsh: Ana's English words, and their Welsh from Bedrock
    at_gwen = translations([m for _, m in received(gwen)])
    assert set(at_gwen) == {(t, "cy") for t in ana_turns}
    for (turn_id, _), translation in at_gwen.items():
        assert translation["text"] == translated(ana_turns[turn_id]["text"])

    # Fran reads French: both speakers' words in French, nothing else
    at_fran = translations(fran)
    assert set(at_fran) == {(t, "fr") for t in (*ana_turns, *gwen_turns)}
    turns = {**ana_turns, **gwen_turns}
    for (turn_id, _), translation in at_fran.items():
        assert translation["text"] == translated(turns[turn_id]["text"])

    # once for the room: one Converse call per turn and language, whoever reads it
    asked = Counter(
        (
            r["body"]["system"][0]["text"].split(" into ")[1].split(".")[0],
            r["body"]["messages"][0]["content"][0]["text"],
        )
        for r in bedrock.requests
    )
    assert all(n == 1 for n in asked.values()), asked
    assert sorted(asked) == sorted(
        [("Welsh", t["text"]) for t in ana_turns.values()]
        + [("French", t["text"]) for t in turns.values()]
    )

    report = {
        "what": "seconds from a turn reaching its reader to the turn's translation reaching it",
        "whisper_en_cy_to_en_at_ana": _after_turn(ana, gwen_turns, "en"),
        "bedrock_stand_in_en_to_cy_at_gwen": _after_turn(gwen, ana_turns, "cy"),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "meeting-translation-latency.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


def _after_turn(
    reader: StreamRun, turns: Mapping[str, Mapping[str, Any]], language: str
) -> dict[str, float]:
    """Seconds from a turn reaching the reader to its translation reaching it."""
    came: dict[tuple[str, str], float] = {}
    for at, m in received(reader):
        if m["type"] == "turn" and m["turn_id"] in turns:
            came.setdefault((m["turn_id"], "turn"), at)
        if m["type"] == "translation" and m["target_language"] == language:
            came.setdefault((m["turn_id"], "translation"), at)
    gaps = sorted(came[(t, "translation")] - came[(t, "turn")] for t in turns)
    assert all(g >= 0 for g in gaps)
    p95 = gaps[min(len(gaps) - 1, round(0.95 * (len(gaps) - 1)))]
    return {
        "p50": round(statistics.median(gaps), 3),
        "p95": round(p95, 3),
        "max": round(gaps[-1], 3),
        "n": len(gaps),
    }


def test_the_server_says_what_its_model_speaks(meeting: RunningPipeline) -> None:
    import urllib.request

    with urllib.request.urlopen(meeting.http + "/v1/languages", timeout=10) as reply:
        info = json.loads(reply.read())
    assert info["model"] == "base" and info["multilingual"] and info["detect"]
    assert {"en", "cy", "fr"} <= set(info["spoken"]) and len(info["spoken"]) == 99
    assert info["whisper_translation"] is True


def _spoken(entries: list[Any], gap_s: float = 1.5) -> Audio:
    pause = b"\0\0" * int(16000 * gap_s)
    return Audio(pause.join(read_audio(e.audio).pcm for e in entries), 16000)


def test_welsh_and_english_through_the_multilingual_model_named_and_detected(
    meeting: RunningPipeline,
) -> None:
    """Every Welsh recording in one session, with ``language=cy`` and with ``auto``; English
    recordings with ``auto``. What it measured is reported (``artifacts/languages.json``) and
    held: Whisper base's Welsh is weak (the offline WER of these ten is 1.24,
    ``docs/benchmarks/language-id-base.json``), and its detection never names Welsh on them."""
    welsh = list(WELSH.values())
    english = [ENGLISH, *list(load_manifest(DATA / "manifest.jsonl"))[1:5]]

    async def sessions() -> dict[str, StreamRun]:
        runs = await asyncio.gather(
            *(
                stream_audio(
                    meeting.url,
                    _spoken(entries),
                    speed=2,
                    tail_silence_s=3,
                    params=p,
                    finish_timeout_s=300,
                )
                for entries, p in (
                    (welsh, {"language": "cy"}),
                    (welsh, {"language": "auto"}),
                    (english, {"language": "auto"}),
                )
            )
        )
        return dict(zip(("cy", "cy-auto", "en-auto"), runs, strict=True))

    runs = asyncio.run(sessions())
    report: dict[str, Any] = {}
    for name, run in runs.items():
        assert run.close_code == 1000, name
        entries = welsh if name.startswith("cy") else english
        finals = [f.message for f in run.finals if f.message.text]
        languages = Counter(str(f.language) for f in finals)
        report[name] = {
            "wer": round(corpus_wer([" ".join(e.text for e in entries)], [run.transcript]), 4),
            "finals_by_language": dict(languages),
            "probabilities": [f.language_probability for f in finals],
        }
    ARTIFACTS.mkdir(exist_ok=True)
    chosen = [str(f.message.language) for f in runs["cy-auto"].finals if f.message.text]
    report["cy-auto"]["changes"] = sum(a != b for a, b in itertools.pairwise(chosen))
    (ARTIFACTS / "languages.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    assert report["en-auto"]["finals_by_language"].keys() == {"en"}
    assert report["en-auto"]["wer"] < 0.15
    assert report["cy"]["finals_by_language"].keys() == {"cy"}  # named: transcribed as Welsh
    assert report["cy"]["wer"] < 1.6  # weak, as measured offline; not English gibberish
    # detected: base never names Welsh on these (offline, each alone, it says la, ur, nl, es,
    # el, de, af: seven languages over ten). With the session's detections as the prior the
    # choice stays within two and changes less than every other final. Measured: 0 or 1
    # changes in most runs, 3 (la and en) in one CI run, where finals of the session were
    # decoded at once on the two transcribers, each against the same history
    assert len(set(chosen)) <= 2, chosen
    assert report["cy-auto"]["changes"] <= 4, chosen


def test_two_pages_in_two_languages_each_show_the_other_translated(
    meeting: RunningPipeline,
    playwright: Playwright,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The seed's meeting in headless Chromium: Ana speaks English and reads English, Gwen
    speaks Welsh and reads Welsh; each page shows the other's words with the translation into
    its reader's language (screenshots in ``artifacts/``)."""
    welsh_file = tmp_path / "gwen.wav"
    soundfile.write(welsh_file, np.frombuffer(welsh_speech().pcm, "<i2"), 16000)
    browsers = [launch(playwright, tmp_path, None) for _ in range(2)]
    try:
        pages = {}
        for browser, (name, speaks, reads, audio) in zip(
            browsers,
            (("Ana", "en", "en", ENGLISH.audio), ("Gwen", "cy", "cy", str(welsh_file))),
            strict=True,
        ):
            page = browser.new_page(bypass_csp=True, viewport={"width": 1100, "height": 640})
            page.goto(meeting.http + "/")
            page.wait_for_function("document.querySelectorAll('#language option').length > 90")
            page.fill("#room", "page-meeting")
            page.fill("#name", name)
            page.select_option("#language", speaks)
            page.select_option("#read", reads)
            page.click("#join-button")
            page.wait_for_selector("#state[data-state=connected]")
            pages[name] = (page, audio)
        pages["Ana"][0].wait_for_function(
            "document.querySelectorAll('#participants li').length === 2"
        )
        for page, audio in pages.values():
            page.set_input_files("#file", audio)
        ana, gwen = pages["Ana"][0], pages["Gwen"][0]
        # each sees the other's lines with a translation into its own language
        ana.wait_for_function(
            "document.querySelectorAll('#transcript .line .translation[lang=en]').length >= 2",
            timeout=90000,
        )
        gwen.wait_for_function(
            "document.querySelectorAll('#transcript .line .translation[lang=cy]').length >= 1",
            timeout=90000,
        )
        time.sleep(1.0)
        ARTIFACTS.mkdir(exist_ok=True)
        for name, (page, _) in pages.items():
            page.screenshot(path=str(ARTIFACTS / f"browser-meeting-{name.lower()}.png"))
        translated_lines = {
            name: page.evaluate(
                """[...document.querySelectorAll('#transcript .line')].filter(
                    l => l.querySelector('.translation')).map(l => ({
                    who: l.querySelector('.who').textContent,
                    langs: [...l.querySelectorAll('.translation')].map(t => t.lang)}))"""
            )
            for name, (page, _) in pages.items()
        }
        assert {line["who"] for line in translated_lines["Ana"]} == {"Gwen:"}
        assert all(line["langs"] == ["en"] for line in translated_lines["Ana"])
        assert {line["who"] for line in translated_lines["Gwen"]} == {"Ana:"}
        assert all(line["langs"] == ["cy"] for line in translated_lines["Gwen"])
        welsh_line = gwen.locator("#transcript .line .translation[lang=cy]").first.inner_text()
        assert "TRANSLATED[" in welsh_line  # the Bedrock stand-in's Welsh
    finally:
        for browser in browsers:
            browser.close()
