"""``streamscribe tune``: the segmenter core and the model over a manifest, in process and
faster than real time, to choose segmentation and turn settings by their WER.

For each file: the segmenter cuts utterances and turns exactly as the pipeline does; each
utterance is transcribed as its fast final would be, each turn as the transcriber settles it
(the file's settled text so far as the prompt). Reports the corpus WER of the fast finals, of
the settled text and of each whole file offline, overall and per group. Latency is not
measured here (``bench`` does that, at real-time pace).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from ingest.delivery import falls_back
from segmenter.core import UtteranceEnded, UtteranceSegmenter
from segmenter.options import SegmenterOptions
from segmenter.turns import TurnEnded
from segmenter.vad import WebRtcSpeechDetector
from shared.audio import PIPELINE_SAMPLE_RATE, float_to_s16
from streamscribe.benchmarks.metrics import (
    ManifestEntry,
    corpus_wer,
    group_of,
    load_manifest,
    speaker_half,
)
from streamscribe.client import read_audio
from transcriber.model import Scope, SpeechModel
from transcriber.options import ModelOptions
from transcriber.turns import TURN_LEAD_S, TurnAudio, prompt_from, settle_turn

CHUNK_MS = 50
TAIL_SILENCE_S = 2.0


@dataclass(frozen=True, slots=True)
class FileResult:
    id: str
    finals: tuple[str, ...]
    turns: tuple[str, ...]
    """Each turn as delivered (:func:`ingest.delivery.falls_back` decides for its finals)."""
    turn_sizes: tuple[int, ...]
    """Utterances per turn."""
    offline: str
    empty_over_finals: int = 0
    """Turns delivered empty where their finals had text."""
    fallbacks: int = 0
    """Turns delivered as their finals."""

    @property
    def fast_text(self) -> str:
        return " ".join(t for t in self.finals if t)

    @property
    def settled_text(self) -> str:
        return " ".join(t for t in self.turns if t)


def pcm_of(entry: ManifestEntry) -> bytes:
    audio = read_audio(entry.audio)
    if audio.sample_rate == PIPELINE_SAMPLE_RATE:
        return audio.pcm
    samples = np.frombuffer(audio.pcm, "<i2").astype(np.float32) / 32768
    return float_to_s16(soxr.resample(samples, audio.sample_rate, PIPELINE_SAMPLE_RATE))


def segment(pcm: bytes, options: SegmenterOptions) -> list[UtteranceEnded | TurnEnded]:
    segmenter = UtteranceSegmenter(options, WebRtcSpeechDetector(options.vad_aggressiveness))
    step = PIPELINE_SAMPLE_RATE * CHUNK_MS // 1000 * 2
    padded = pcm + bytes(int(TAIL_SILENCE_S * PIPELINE_SAMPLE_RATE) * 2)
    events = []
    for offset in range(0, len(padded), step):
        events += segmenter.feed(padded[offset : offset + step])
    events += segmenter.flush()
    return [e for e in events if isinstance(e, UtteranceEnded | TurnEnded)]


class _Loaded:
    """The pool worker's model, loaded once when the process starts."""

    model: SpeechModel | None = None


def _init(options: ModelOptions) -> None:
    _Loaded.model = SpeechModel(options)


@dataclass(frozen=True, slots=True)
class TuneJob:
    entry: ManifestEntry
    options: SegmenterOptions
    lead_s: float
    prompt: bool
    with_offline: bool
    finals_as_partials: bool = False
    """Decode each utterance as its last partial would be (its cost and accuracy)."""


def _run_file(job: TuneJob) -> FileResult:
    entry, options, lead_s, prompt = job.entry, job.options, job.lead_s, job.prompt
    model = _Loaded.model
    assert model is not None
    pcm = pcm_of(entry)
    finals: list[str] = []
    turns: list[str] = []
    empty_over_finals = fallbacks = 0
    sizes: list[int] = []
    by_index: dict[int, str] = {}
    settled = ""
    for event in segment(pcm, options):
        if isinstance(event, UtteranceEnded):
            text = model.transcribe(
                event.pcm, None, final=not job.finals_as_partials, speech_ratio=event.speech_ratio
            ).text
            finals.append(text)
            by_index[event.utterance_index] = text
            continue
        turn = settle_turn(
            model,
            TurnAudio(event.pcm, None, event.speech_ratio, prompt_from(settled) if prompt else ""),
            lead_s=lead_s,
        )
        span = range(event.first_utterance, event.last_utterance + 1)
        said = [by_index[i] for i in span if by_index.get(i)]
        decoded = turn.transcription.text
        withheld = turn.transcription.out_of_language
        unusable = not turn.usable and bool(said)
        if unusable or falls_back(withheld=withheld, final_texts=said):
            turns.append(" ".join(said))
            fallbacks += 1
        else:
            turns.append(decoded)
            empty_over_finals += not decoded and bool(said)
        sizes.append(event.last_utterance - event.first_utterance + 1)
        if turn.clean:  # as the transcriber keeps it: the decoding's own text
            settled = f"{settled} {decoded}".strip()
    offline = ""
    if job.with_offline:
        samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
        offline = model.transcribe_array(
            samples, None, final=True, language_guard=False, scope=Scope.RECORDING
        ).text
    return FileResult(
        entry.id,
        tuple(finals),
        tuple(turns),
        tuple(sizes),
        offline,
        empty_over_finals,
        fallbacks,
    )


def _wer(entries: Sequence[ManifestEntry], texts: dict[str, str]) -> float | None:
    scored = [e for e in entries if e.text]
    if not scored:
        return None
    return round(corpus_wer([e.text for e in scored], [texts[e.id] for e in scored]), 4)


def summarize(entries: Sequence[ManifestEntry], results: Sequence[FileResult]) -> dict[str, Any]:
    by_id = {r.id: r for r in results}
    groups: dict[str, list[ManifestEntry]] = {}
    for entry in entries:
        groups.setdefault(group_of(entry.id), []).append(entry)

    def scores(subset: Sequence[ManifestEntry]) -> dict[str, Any]:
        fast = _wer(subset, {e.id: by_id[e.id].fast_text for e in subset})
        settled = _wer(subset, {e.id: by_id[e.id].settled_text for e in subset})
        offline = _wer(subset, {e.id: by_id[e.id].offline for e in subset})
        return {
            "fast_final_wer": fast,
            "settled_wer": settled,
            "offline_wer": offline,
            "settled_over_offline": round(settled / offline, 3)
            if settled is not None and offline
            else None,
        }

    sizes = [s for r in results for s in r.turn_sizes]
    return {
        **scores(entries),
        "finals": sum(len(r.finals) for r in results),
        "turns": len(sizes),
        "turns_empty_over_finals": sum(r.empty_over_finals for r in results),
        "turns_falling_back": sum(r.fallbacks for r in results),
        "utterances_per_turn": round(sum(sizes) / len(sizes), 2) if sizes else None,
        "groups": {name: scores(subset) for name, subset in sorted(groups.items())},
        "nonspeech_text": {e.id: by_id[e.id].settled_text for e in entries if not e.text},
        "files": {
            r.id: {"finals": r.finals, "turns": r.turns, "offline": r.offline} for r in results
        },
    }


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``name=value`` pairs naming :class:`SegmenterOptions` fields."""
    known = {f.name: f.type for f in fields(SegmenterOptions)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in known:
            raise ValueError(f"unknown segmenter option {name!r}")
        out[name] = float(value) if "." in value else int(value)
    return out


def run_tune(
    manifest: str,
    configs: Sequence[Sequence[str]],
    *,
    model_options: ModelOptions,
    processes: int,
    output: str,
    limit: int | None = None,
    lead_s: float = TURN_LEAD_S,
    prompt: bool = True,
    offline_cache: str | None = None,
    finals_as_partials: bool = False,
    half: str | None = None,
) -> int:
    """``half``: only the recordings of that half of the speaker split (``tune``, ``report``;
    None: all). ``offline_cache``: a JSON file of the offline transcripts, read if it is there (they
    depend only on the model), written otherwise."""
    entries = [e for e in load_manifest(manifest, limit) if half in (None, speaker_half(e.speaker))]
    report: dict[str, Any] = {
        "manifest": str(Path(manifest).resolve()),
        "half": half or "both",
        "split": {e.id: speaker_half(e.speaker) for e in entries},
        "turn_lead_s": lead_s,
        "prompt": prompt,
        "finals_as_partials": finals_as_partials,
        "partial_window_floor_s": model_options.partial_window_floor_s,
        "runs": [],
    }
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_init, initargs=(model_options,)) as pool:
        offline: dict[str, str] | None = None
        cache = Path(offline_cache) if offline_cache else None
        if cache is not None and cache.is_file():
            offline = json.loads(cache.read_text(encoding="utf-8"))
        for config in configs or [[]]:
            options = replace(SegmenterOptions(), **parse_overrides(config))
            started = time.perf_counter()
            jobs = [
                TuneJob(e, options, lead_s, prompt, offline is None, finals_as_partials)
                for e in entries
            ]
            results = pool.map(_run_file, jobs, chunksize=1)
            if offline is None:
                offline = {r.id: r.offline for r in results}
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    cache.write_text(json.dumps(offline), encoding="utf-8")
            results = [replace(r, offline=offline.get(r.id, "")) for r in results]
            summary = summarize(entries, results)
            summary["options"] = list(config)
            summary["seconds"] = round(time.perf_counter() - started, 1)
            report["runs"].append(summary)
            print(
                f"{' '.join(config) or 'defaults'}: fast {summary['fast_final_wer']} "
                f"settled {summary['settled_wer']} offline {summary['offline_wer']} "
                f"({summary['settled_over_offline']}x) turns {summary['turns']}",
                file=sys.stderr,
                flush=True,
            )
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0
