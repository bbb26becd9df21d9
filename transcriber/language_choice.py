"""Choosing the spoken language of a piece of a session that asked for detection.

Whisper's language detection on one utterance is noisy where the piece is short or noisy
(a Welsh "Diolch" can come out as English, a cough as Norwegian). A speaker rarely changes
language between two utterances, so the session's recent detections are a prior: the piece's
own evidence, weighed by how much speech it holds, against what the speaker has been
speaking. Pure: the detector's scores and the history in, the choice out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from shared.errors import SchemaError


class Detection(msgspec.Struct, frozen=True):
    """One piece's chosen language, as kept in the session's history (newest first)."""

    language: str
    probability: float
    seconds: float

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Detection:
        try:
            return _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise SchemaError(f"bad language detection: {exc}") from exc


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Detection)


@dataclass(frozen=True, slots=True)
class LanguageOptions:
    full_evidence_s: float = 4.0
    """A piece this long (or longer) counts its detection in full; a shorter one, in
    proportion (a 1 s piece a quarter)."""
    history: int = 8
    """Detections of the session kept as the prior."""
    decay: float = 0.8
    """Each older detection counts this much less than the one after it."""
    smoothing: float = 0.5
    """Prior mass spread over every language: how open a session stays to a change."""
    prior_weight: float = 1.0
    """How much the history counts against the piece's own evidence (0: none)."""

    def __post_init__(self) -> None:
        if self.full_evidence_s <= 0 or self.history < 0 or not 0 < self.decay <= 1:
            raise ValueError("bad language options")
        if self.smoothing <= 0 or self.prior_weight < 0:
            raise ValueError("smoothing must be positive and the prior's weight not negative")


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    language: str
    probability: float
    """The detector's probability of the chosen language, reweighted by the prior."""
    detected: str
    """What the piece alone said (the same as ``language`` unless the prior overruled it)."""


def choose_language(
    scores: Sequence[tuple[str, float]],
    history: Sequence[Detection],
    seconds: float,
    options: LanguageOptions | None = None,
) -> LanguageChoice:
    """``scores``: the detector's probability of each language for the piece; ``history``:
    the session's earlier choices, newest first; ``seconds``: the piece's length."""
    if not scores:
        raise ValueError("no language scores")
    options = options or LanguageOptions()
    detected = max(scores, key=lambda s: s[1])[0]
    evidence = min(1.0, max(seconds, 0.0) / options.full_evidence_s)
    mass: dict[str, float] = {}
    weight = 1.0
    for past in history[: options.history]:
        strength = min(1.0, past.seconds / options.full_evidence_s) * past.probability
        mass[past.language] = mass.get(past.language, 0.0) + weight * strength
        weight *= options.decay
    total = sum(mass.values())
    uniform = options.smoothing / len(scores)
    prior_total = options.smoothing + total
    log_prior = {
        language: options.prior_weight * math.log((uniform + mass.get(language, 0.0)) / prior_total)
        for language, _ in scores
    }
    # the decision: the piece's evidence, weighed by its length, against the prior
    language = max(scores, key=lambda s: evidence * math.log(max(s[1], 1e-12)) + log_prior[s[0]])[0]
    # the probability reported: the detector's, reweighted by the prior (for a session with
    # no history, the detector's own)
    joint = {lang: max(p, 1e-12) * math.exp(log_prior[lang]) for lang, p in scores}
    return LanguageChoice(language, round(joint[language] / sum(joint.values()), 4), detected)
