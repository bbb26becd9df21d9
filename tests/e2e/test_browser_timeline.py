"""The page as a room's one timeline, in headless Chromium against the real pipeline: two
pages that join 10 s apart are shown and exported in speaking order, and a page joining
after they spoke is shown what was said, as history."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from playwright.sync_api import Page, Playwright

from tests.conftest import RunningPipeline
from tests.e2e.test_browser import (  # noqa: F401 (fixtures, used by name)
    ARTIFACTS,
    BY_ID,
    SETTLED,
    _no_proxy,
    join,
    launch,
    parse_srt,
    playwright,
)

pytestmark = pytest.mark.e2e

ANA_SAYS = (
    "ls-test-clean-1089-134686-0000",
    "ls-test-clean-1995-1837-0001",
    "ls-dev-clean-1988-24833-0001",
)
BEN_SAYS = "jfk-inaugural-1961"
BEN_JOINS_AFTER_S = 10.0


def recording(tmp_path: Path, ids: tuple[str, ...], gap_s: float = 2.0) -> Path:
    """Recordings one after the other, ``gap_s`` of silence between: a turn each."""
    parts = []
    for i in ids:
        audio, rate = soundfile.read(BY_ID[i].audio, dtype="int16")
        parts += [audio, np.zeros(int(rate * gap_s), np.int16)]
    path = tmp_path / f"{ids[0]}-and-more.wav"
    soundfile.write(path, np.concatenate(parts), 16000)
    return path


def lines(page: Page) -> list[dict[str, object]]:
    """The transcript as the page shows it, top to bottom."""
    shown: list[dict[str, object]] = page.evaluate(
        """[...document.querySelectorAll('#transcript .line')].map(l => ({
            who: l.querySelector('.who').textContent.replace(/:$/, ''),
            text: l.querySelector('.text').textContent,
            wall: Number(l.dataset.wall), history: l.classList.contains('history')}))"""
    )
    return shown


def speakers_in_turn(sequence: list[object]) -> list[object]:
    """Who spoke, each run of one speaker once: [Ana, Ben, Ana]."""
    return [s for i, s in enumerate(sequence) if i == 0 or sequence[i - 1] != s]


def test_pages_joining_apart_show_and_export_speaking_order_and_a_late_page_the_history(
    pipeline: RunningPipeline,
    playwright: Playwright,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = pipeline.http + "/"
    room = "timeline-page"
    browsers = [launch(playwright, tmp_path, None) for _ in range(3)]
    try:
        ana = join(browsers[0], url, room, "Ana")
        ana.set_input_files("#file", str(recording(tmp_path, ANA_SAYS)))
        time.sleep(BEN_JOINS_AFTER_S)
        ben = join(browsers[1], url, room, "Ben")
        ben.set_input_files("#file", BY_ID[BEN_SAYS].audio)
        for page in (ana, ben):
            page.wait_for_function("!window.streamscribe.fileStreaming", timeout=60000)
            page.wait_for_function(
                "new Set(window.streamscribe.transcript.map(e => e.speaker)).size === 2",
                timeout=30000,
            )
            page.wait_for_function(SETTLED, timeout=30000)
        time.sleep(1.0)  # the last turns' translations and settling reach both pages
        ARTIFACTS.mkdir(exist_ok=True)
        ana.screenshot(path=str(ARTIFACTS / "browser-timeline-ana.png"), full_page=True)

        for page in (ana, ben):
            shown = lines(page)
            walls = [line["wall"] for line in shown]
            assert walls == sorted(walls)  # type: ignore[type-var]
            # Ben, who joined 10 s later, between Ana's first sentence and her second
            assert speakers_in_turn([line["who"] for line in shown]) == ["Ana", "Ben", "Ana"]
            with page.expect_download() as download:
                page.click("[data-format=srt]")
            cues = parse_srt(Path(download.value.path()).read_text(encoding="utf-8"))
            assert [c[1] for c in cues] == sorted(c[1] for c in cues)
            assert speakers_in_turn([c[3].split(":", 1)[0] for c in cues]) == ["Ana", "Ben", "Ana"]
            assert [c[3].split(": ", 1)[1] for c in cues] == [line["text"] for line in shown]

        ana.click("#leave-button")
        ben.click("#leave-button")
        cy = join(browsers[2], url, room, "Cy")
        expected = [(line["who"], line["text"]) for line in lines(ana)]
        cy.wait_for_function(
            f"document.querySelectorAll('#transcript .line.history').length >= {len(expected)}",
            timeout=15000,
        )
        history = lines(cy)
        assert all(line["history"] for line in history)
        assert [(line["who"], line["text"]) for line in history] == expected
        cy.screenshot(path=str(ARTIFACTS / "browser-history-cy.png"), full_page=True)
    finally:
        for browser in browsers:
            browser.close()
