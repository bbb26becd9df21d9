"""Choosing a detecting session's language: a piece's detection against the speaker's recent
languages."""

from __future__ import annotations

import pytest

from shared.errors import SchemaError
from transcriber.language_choice import (
    Detection,
    LanguageOptions,
    choose_language,
)

LANGUAGES = ("en", "cy", "fr", "de")


def scores(**probabilities: float) -> list[tuple[str, float]]:
    rest = (1.0 - sum(probabilities.values())) / (len(LANGUAGES) - len(probabilities))
    return [(lang, probabilities.get(lang, rest)) for lang in LANGUAGES]


WELSH_SPEAKER = [Detection("cy", 0.9, 3.0)] * 5


def test_without_history_the_detection_stands() -> None:
    choice = choose_language(scores(en=0.7, cy=0.2), [], 2.0)
    assert (choice.language, choice.detected) == ("en", "en")
    assert choice.probability == pytest.approx(0.7)  # the detector's own


def test_a_short_piece_does_not_flip_a_speakers_language() -> None:
    choice = choose_language(scores(en=0.8, cy=0.15), WELSH_SPEAKER, 1.0)
    assert (choice.language, choice.detected) == ("cy", "en")


def test_a_long_clear_piece_in_another_language_does() -> None:
    choice = choose_language(scores(en=0.999, cy=0.0005), WELSH_SPEAKER, 6.0)
    assert choice.language == "en" and choice.probability > 0.5


def test_a_speaker_who_changes_language_is_followed_within_a_few_pieces() -> None:
    history = list(WELSH_SPEAKER)
    chosen = []
    for _ in range(4):  # now speaking French, 3 s at a time, detected fairly surely
        choice = choose_language(scores(fr=0.97, cy=0.01), history, 3.0)
        chosen.append(choice.language)
        history.insert(0, Detection(choice.language, choice.probability, 3.0))
    assert chosen[-1] == "fr" and chosen.count("fr") >= 2, chosen


def test_with_no_weight_the_prior_is_ignored() -> None:
    options = LanguageOptions(prior_weight=0.0)
    assert choose_language(scores(en=0.8), WELSH_SPEAKER, 1.0, options).language == "en"


def test_bad_options_and_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        LanguageOptions(decay=0.0)
    with pytest.raises(ValueError):
        LanguageOptions(smoothing=0.0)
    with pytest.raises(ValueError):
        choose_language([], [], 1.0)
    with pytest.raises(SchemaError):
        Detection.decode(b'{"language": 3}')
    detection = Detection("cy", 0.9, 2.5)
    assert Detection.decode(detection.encode()) == detection
