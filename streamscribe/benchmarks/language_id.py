"""``streamscribe bench-languages``: the spoken language of each recording, as a detecting
session chooses it, with and without the session's recent languages as the prior.

Each manifest is one speaker's session: its recordings, in order, are its pieces. For each
piece: what Whisper's detection alone says, what the session chooses (detection weighed
against the history of earlier choices, as the transcribers do for ``language=auto``), the
text decoded in the chosen language and in the manifest's own, and the WER of each; for
speech not in English, its translation into English by Whisper's own translate task (the
transcribers' local translator) and that task's model time per audio second. JSON out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.audio import s16_to_float
from shared.settings import Settings
from streamscribe.benchmarks.metrics import corpus_wer, load_manifest
from streamscribe.client import read_audio
from streamscribe.options import model_options
from transcriber.language_choice import Detection, LanguageOptions, choose_language
from transcriber.model import SpeechModel
from transcriber.windows import Scope

SHORT_S = 3.0
"""Pieces shorter than this are where a detection alone flips most."""


@dataclass(frozen=True, slots=True)
class LanguageBenchOptions:
    manifests: tuple[tuple[str, str], ...]
    """(manifest.jsonl, the language its recordings are in)."""
    model: str = "base"
    limit: int | None = None
    output: str = "bench-results/language-id.json"
    decode: bool = True
    """False: detection only (no WER), for large sets."""


def run_language_bench(options: LanguageBenchOptions, settings: Settings) -> dict[str, Any]:
    model = SpeechModel(model_options(settings.model_copy(update={"model": options.model})))
    if not model.multilingual:
        raise ValueError(f"{options.model} is English-only: it detects no language")
    sessions = [
        _session(model, Path(path), language, options) for path, language in options.manifests
    ]
    report = {
        "model": options.model,
        "cpu_threads": settings.cpu_threads,
        "language_options": {
            k: getattr(LanguageOptions(), k) for k in LanguageOptions.__dataclass_fields__
        },
        "sessions": sessions,
    }
    out = Path(options.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def _session(
    model: SpeechModel, manifest: Path, language: str, options: LanguageBenchOptions
) -> Any:
    entries = [e for e in load_manifest(manifest, options.limit) if e.text.strip()]
    history: list[Detection] = []
    pieces: list[dict[str, Any]] = []
    refs: list[str] = []
    in_chosen: list[str] = []
    in_named: list[str] = []
    detect_s = translate_s = 0.0
    audio_s = 0.0
    for entry in entries:
        audio = read_audio(entry.audio)
        seconds = len(audio.pcm) / 32000
        started = time.perf_counter()
        scores = model.detect_languages(audio.pcm)
        detect_s += time.perf_counter() - started
        audio_s += seconds
        alone = choose_language(scores, [], seconds)
        chosen = choose_language(scores, history, seconds)
        history.insert(0, Detection(chosen.language, chosen.probability, seconds))
        english = ""
        if options.decode and language != "en":
            started = time.perf_counter()
            english = model.translate_to_english(audio.pcm, language)
            translate_s += time.perf_counter() - started
        refs.append(entry.text)
        in_chosen.append(_decode(model, audio.pcm, chosen.language) if options.decode else "")
        in_named.append(_decode(model, audio.pcm, language) if options.decode else "")
        pieces.append(
            {
                "id": entry.id,
                "seconds": round(seconds, 2),
                "reference": entry.text,
                "detected": alone.language,
                "detected_probability": alone.probability,
                "chosen": chosen.language,
                "chosen_probability": chosen.probability,
                "text_in_chosen": in_chosen[-1],
                "text_in_named": in_named[-1],
                "translated_to_english": english,
            }
        )
    wer_named = corpus_wer(refs, in_named) if options.decode else None
    wer_chosen = corpus_wer(refs, in_chosen) if options.decode else None
    short = [p for p in pieces if p["seconds"] < SHORT_S]
    return {
        "manifest": str(manifest),
        "language": language,
        "pieces": pieces,
        "detection_accuracy_alone": _share(p["detected"] == language for p in pieces),
        "detection_accuracy_with_prior": _share(p["chosen"] == language for p in pieces),
        "short_pieces": len(short),
        "short_accuracy_alone": _share(p["detected"] == language for p in short),
        "short_accuracy_with_prior": _share(p["chosen"] == language for p in short),
        "flips_alone": sum(p["detected"] != language for p in pieces),
        "flips_with_prior": sum(p["chosen"] != language for p in pieces),
        "wer_language_named": None if wer_named is None else round(wer_named, 4),
        "wer_language_chosen": None if wer_chosen is None else round(wer_chosen, 4),
        "detection_s_per_audio_s": round(detect_s / audio_s, 4) if audio_s else 0.0,
        "translate_to_english_s_per_audio_s": round(translate_s / audio_s, 4)
        if audio_s and translate_s
        else None,
    }


def _decode(model: SpeechModel, pcm: bytes, language: str) -> str:
    return model.transcribe_array(
        s16_to_float(pcm), language, final=True, language_guard=False, scope=Scope.RECORDING
    ).text


def _share(flags: Any) -> float:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else 0.0
