"""OpenAI's audio API on a running ``up``, driven by the ``openai`` SDK pointed at it by
``base_url``, as users of the SDK (and LiveKit's and pipecat's OpenAI services) do."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from shared.settings import Settings
from streamscribe.benchmarks.bench import offline_transcript
from streamscribe.benchmarks.metrics import corpus_wer, load_manifest, normalize
from streamscribe.client import read_audio, stream_audio
from streamscribe.options import model_options
from streamscribe.redis_server import free_port
from tests.conftest import DATA, RunningPipeline, is_ready, start_up, stop_up, wait_until
from transcriber.model import SpeechModel

pytestmark = pytest.mark.e2e

BY_ID = {e.id: e for e in load_manifest(DATA / "manifest.jsonl")}
LONG = BY_ID["long-ljspeech-LJ001-0001-0008"]  # 50.3 s: two windows, cut at a pause
JFK = BY_ID["jfk-inaugural-1961"]


@pytest.fixture(autouse=True, scope="module")
def ready(pipeline: RunningPipeline) -> None:
    assert wait_until(lambda: is_ready(pipeline), timeout=180), "no transcriber became ready"


def client(pipeline: RunningPipeline, api_key: str = "unused") -> OpenAI:
    return OpenAI(base_url=pipeline.http + "/v1", api_key=api_key, max_retries=0, timeout=300)


def test_a_recording_transcribes_as_offline_faster_whisper_does(pipeline: RunningPipeline) -> None:
    with Path(LONG.audio).open("rb") as file:
        answer = client(pipeline).audio.transcriptions.create(model="whisper-1", file=file)
    offline = offline_transcript(SpeechModel(model_options(Settings())), LONG.audio)
    uploaded_wer = corpus_wer([LONG.text], [answer.text])
    offline_wer = corpus_wer([LONG.text], [offline])
    print(f"upload WER {uploaded_wer:.4f}, offline {offline_wer:.4f}")
    assert uploaded_wer <= offline_wer + 0.02
    assert answer.usage is not None and answer.usage.seconds == 51  # type: ignore[union-attr]


def test_every_response_format(pipeline: RunningPipeline) -> None:
    api = client(pipeline).audio.transcriptions
    audio = Path(LONG.audio).read_bytes()

    def ask(response_format: str, **extra: object) -> object:
        return api.create(
            model="whisper-1", file=("ljspeech.wav", audio), response_format=response_format,  # type: ignore[arg-type]
            **extra,  # type: ignore[arg-type]
        )  # fmt: skip

    text = ask("text")
    assert isinstance(text, str) and corpus_wer([LONG.text], [text]) < 0.15

    srt = ask("srt")
    assert isinstance(srt, str)
    cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n", srt)
    assert [int(c[0]) for c in cues] == list(range(1, len(cues) + 1)) and len(cues) >= 4
    assert normalize(" ".join(c[3] for c in cues)) == normalize(text)
    assert cues[-1][2] > "00:00:40,000"  # times are the recording's, past the first window

    vtt = ask("vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT\n\n")
    assert re.search(r"00:00:\d\d\.\d{3} --> 00:00:\d\d\.\d{3}\n", vtt)

    verbose = ask("verbose_json", timestamp_granularities=["word", "segment"])
    assert verbose.language == "english" and verbose.duration == pytest.approx(50.328, abs=0.01)  # type: ignore[attr-defined]
    segments, words = verbose.segments, verbose.words  # type: ignore[attr-defined]
    assert segments and words and normalize(verbose.text) == normalize(text)  # type: ignore[attr-defined]
    starts = [w.start for w in words]
    assert starts == sorted(starts) and 0 <= starts[0] < 1.0 and words[-1].end <= 50.5
    assert all(s.start < s.end for s in segments) and segments[-1].end > 40

    only_words = ask("verbose_json", timestamp_granularities=["word"])
    assert only_words.words and not only_words.segments  # type: ignore[attr-defined]


def test_stream_true_sends_deltas_then_the_whole_text(pipeline: RunningPipeline) -> None:
    with Path(LONG.audio).open("rb") as file:
        events = list(
            client(pipeline).audio.transcriptions.create(model="whisper-1", file=file, stream=True)
        )
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and kinds.count("transcript.text.done") == 1
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]  # type: ignore[union-attr]
    assert len(deltas) >= 2  # a delta per window, as each is done
    assert "".join(deltas) == events[-1].text  # type: ignore[union-attr]
    assert corpus_wer([LONG.text], [events[-1].text]) < 0.15  # type: ignore[union-attr]


def test_an_english_only_model_refuses_to_translate(pipeline: RunningPipeline) -> None:
    with pytest.raises(openai.BadRequestError) as caught, Path(JFK.audio).open("rb") as file:
        client(pipeline).audio.translations.create(model="whisper-1", file=file)
    assert caught.value.code == "model_cannot_translate"
    assert "English-only" in caught.value.message


@pytest.fixture(scope="module")
def multilingual() -> Iterator[RunningPipeline]:
    """``up`` with the offline multilingual base model (it can translate)."""
    running = start_up(free_port(), transcribers=1, env={"STREAMSCRIBE_MODEL": "base"})
    assert wait_until(lambda: is_ready(running), timeout=180), "no transcriber became ready"
    yield running
    stop_up(running)


def test_a_multilingual_model_translates_into_english(multilingual: RunningPipeline) -> None:
    api = client(multilingual).audio.translations
    with Path(JFK.audio).open("rb") as file:
        verbose = api.create(model="whisper-1", file=file, response_format="verbose_json")
    assert verbose.task == "translate"  # type: ignore[attr-defined]
    assert corpus_wer([JFK.text], [verbose.text]) < 0.3
    with Path(JFK.audio).open("rb") as file:
        text = api.create(model="whisper-1", file=file, response_format="text")
    assert isinstance(text, str) and normalize(text) == normalize(verbose.text)
    assert [m.id for m in client(multilingual).models.list().data] == ["base"]


def test_the_model_list_names_the_served_model(pipeline: RunningPipeline) -> None:
    models = client(pipeline).models.list()
    assert [m.id for m in models.data] == ["tiny.en"]


def test_bad_uploads_get_400s_while_a_live_stream_carries_on(pipeline: RunningPipeline) -> None:
    api = client(pipeline).audio.transcriptions
    wav = Path(JFK.audio).read_bytes()
    srt_stream = {"response_format": "srt", "stream": True}
    bad: list[tuple[dict[str, object], str, str | None]] = [
        ({"file": ("notes.txt", b"this is not audio" * 200)}, "invalid_file_format", "file"),
        ({"file": ("cut.wav", wav[:30])}, "invalid_file_format", "file"),
        ({"file": ("empty.wav", wav[:44])}, "invalid_file_format", "file"),
        ({"file": ("jfk.wav", wav), "temperature": 3}, "invalid_value", "temperature"),
        ({"file": ("jfk.wav", wav), "language": "fr"}, "unsupported_language", "language"),
        ({"file": ("jfk.wav", wav), **srt_stream}, "invalid_value", "stream"),
        ({"file": ("jfk.wav", wav), "extra_body": {"speed": "2"}}, "unknown_parameter", "speed"),
    ]  # fmt: skip

    def refusals() -> list[tuple[str | None, object]]:
        seen = []
        for fields, _, _ in bad:
            try:
                api.create(model="whisper-1", **fields)  # type: ignore[call-overload]
            except openai.BadRequestError as exc:
                body = exc.body if isinstance(exc.body, dict) else {}
                seen.append((exc.code, body.get("param")))
        return seen

    async def both() -> tuple[list[tuple[str | None, object]], object]:
        live = stream_audio(pipeline.url, read_audio(JFK.audio), speed=1, tail_silence_s=1.0)
        return await asyncio.gather(asyncio.to_thread(refusals), live)

    seen, run = asyncio.run(both())
    assert seen == [(code, param) for _, code, param in bad]
    assert run.close_code == 1000 and not run.errors  # type: ignore[attr-defined]
    assert corpus_wer([JFK.text], [run.transcript]) < 0.2  # type: ignore[attr-defined]


def test_a_post_that_is_not_multipart_is_refused(pipeline: RunningPipeline) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        pipeline.http + "/v1/audio/transcriptions", data=b'{"model": "whisper-1"}',
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_content_type"
