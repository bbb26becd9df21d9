"""The scoring helpers of the benchmarks."""

from __future__ import annotations

from streamscribe.benchmarks.metrics import cuts_repeating, normalize, repeats_across_cuts


def test_a_word_repeated_across_a_cut_is_found_with_where() -> None:
    reference = normalize("he should make inquiries as to symptoms and time")
    pieces = ["He should make inquiries as to", "to symptoms and time."]
    assert cuts_repeating(pieces, reference) == ["inquiries as to | to symptoms and"]
    assert repeats_across_cuts(pieces, reference) == 1


def test_a_repeat_the_reference_says_and_empty_pieces_are_not_counted() -> None:
    reference = normalize("it was very very cold")
    assert cuts_repeating(["It was very", "", "very cold."], reference) == []
    assert cuts_repeating(["It was", "cold."], normalize("it was cold")) == []
