"""Pure measurement helpers for tests and the benchmarks: manifests, normalization, WER."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

_normalizer = EnglishTextNormalizer()


def normalize(text: str) -> str:
    return " ".join(_normalizer(text).split())


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word error rate over the whole corpus, after Whisper's English normalization."""
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        raise ValueError("no reference text to score")
    output = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    errors = output.substitutions + output.deletions + output.insertions
    words = output.substitutions + output.deletions + output.hits
    return float(errors / words)


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    id: str
    audio: Path
    text: str
    seconds: float
    speaker: str = ""
    """Who speaks (the manifest's ``speaker``; the recording's id where it names none)."""


def load_manifest(path: str | Path, limit: int | None = None) -> list[ManifestEntry]:
    """Entries of a manifest.jsonl (``id``, ``audio`` relative to the manifest, ``text``)."""
    manifest = Path(path)
    entries = []
    with manifest.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                entries.append(
                    ManifestEntry(
                        id=str(obj["id"]),
                        audio=manifest.parent / str(obj["audio"]),
                        text=str(obj.get("text", "")),
                        seconds=float(obj.get("seconds", 0.0)),
                        speaker=str(obj.get("speaker") or obj["id"]),
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{manifest}:{number}: bad manifest line: {exc}") from exc
    return entries[:limit] if limit else entries


SPLIT_HALVES = ("tune", "report")


def speaker_half(speaker: str) -> str:
    """The half of ``../shared/audio-dev`` a speaker's recordings belong to: ``tune`` (settings
    are chosen on it) or ``report`` (figures are reported on it too, never tuned on), by a
    stable hash of the speaker's name, so a speaker is never on both sides."""
    digest = hashlib.sha256(speaker.encode()).digest()
    return SPLIT_HALVES[digest[0] & 1]


def group_of(entry_id: str) -> str:
    """The group of a development-set recording, by its id's prefix (``long-``, ``tel-``,
    ``noisy-``, ``pause-``, ``nonspeech-``; anything else is a single utterance)."""
    head = entry_id.split("-", 1)[0]
    names = {
        "long": "long-form",
        "tel": "telephone",
        "noisy": "noisy",
        "pause": "pauses",
        "nonspeech": "nonspeech",
    }
    return names.get(head, "single")


def cuts_repeating(pieces: Sequence[str], reference: str) -> list[str]:
    """Each cut where a piece ends with the word the next one starts with, and the normalized
    ``reference`` never says that word twice in a row: "... end | end ..." (the last three
    words before the cut and the first three after)."""
    words = [normalize(p).split() for p in pieces]
    words = [w for w in words if w]
    said_twice = {a for a, b in itertools.pairwise(reference.split()) if a == b}
    return [
        f"{' '.join(before[-3:])} | {' '.join(after[:3])}"
        for before, after in itertools.pairwise(words)
        if before[-1] == after[0] and before[-1] not in said_twice
    ]


def repeats_across_cuts(pieces: Sequence[str], reference: str) -> int:
    """How many cuts repeat a word (:func:`cuts_repeating`)."""
    return len(cuts_repeating(pieces, reference))


async def run_each(
    entries: Sequence[ManifestEntry],
    at_once: int,
    job: Callable[[ManifestEntry], Awaitable[None]],
) -> None:
    """``job`` for every entry, ``at_once`` at a time; with fewer entries than that, they are
    taken again in turn so the load is still ``at_once``."""
    queue: asyncio.Queue[ManifestEntry] = asyncio.Queue()
    for i in range(max(len(entries), at_once)):
        queue.put_nowait(entries[i % len(entries)])

    async def worker() -> None:
        while not queue.empty():
            await job(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(at_once)))
