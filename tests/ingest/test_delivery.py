from __future__ import annotations

import msgspec

from ingest.delivery import DeliveryOrder, ReleasedTurn
from shared.schema import (
    Commit,
    FinalTranscript,
    PartialTranscript,
    SegmentationFinished,
    TranscriptResult,
    TurnTranscript,
    UtteranceFailed,
)


def result(index: int, text: str = "words", seq: int = 0) -> TranscriptResult:
    return TranscriptResult("s1", index, seq, text, 0.0, 1.0, "en", 1.0)


def final(index: int, text: str = "words") -> FinalTranscript:
    return FinalTranscript(result(index, text), Commit(index, 0, 0.0, 0.0))


def test_finals_released_in_order_once() -> None:
    order = DeliveryOrder()
    assert order.accept(final(1)) == []
    assert order.accept(final(0)) == [final(0), final(1)]
    assert order.accept(final(1)) == []  # duplicate
    assert order.finals_delivered == 2


def test_empty_final_is_consumed_silently_and_failure_takes_its_place() -> None:
    order = DeliveryOrder()
    failed = UtteranceFailed("s1", 1, "boom")
    assert order.accept(final(0, "")) == []
    assert order.accept(failed) == [failed]
    assert order.accept(final(2)) == [final(2)]
    assert order.next_index == 3


def test_complete_once_every_committed_utterance_resolved() -> None:
    order = DeliveryOrder()
    order.accept(final(0))
    assert not order.complete
    order.accept(SegmentationFinished("s1", 2))
    assert not order.complete
    order.accept(final(1, ""))
    assert order.complete


def test_partials_newer_only_and_never_after_their_final() -> None:
    order = DeliveryOrder()
    p1, p2 = PartialTranscript(result(0, seq=1)), PartialTranscript(result(0, seq=2))
    assert order.accept(p2) == [p2]
    assert order.accept(p1) == []  # older
    order.accept(final(0))
    assert order.accept(PartialTranscript(result(0, seq=3))) == []
    assert order.accept(PartialTranscript(result(1, "", seq=1))) == []  # empty text


def test_a_resumed_order_goes_on_where_the_last_connection_left_off() -> None:
    order = DeliveryOrder(next_index=2, finals_delivered=2)
    replayed_log = [final(0), final(1), final(3), final(2)]
    released = [item for event in replayed_log for item in order.accept(event)]
    assert released == [final(2), final(3)]
    assert order.finals_delivered == 4
    stale_partial = PartialTranscript(result(1, "old", seq=5))
    assert order.accept(stale_partial) == []


def turn(
    index: int, first: int, last: int, text: str = "settled", *, fallback: bool = False
) -> TurnTranscript:
    return TurnTranscript(result(last, text), index, first, last, fallback, 0.0)


def test_a_turn_waits_for_its_finals_and_names_those_delivered() -> None:
    order = DeliveryOrder()
    assert order.accept(turn(0, 0, 2)) == []
    assert order.accept(final(0)) == [final(0)]
    assert order.accept(final(1, "")) == []  # nothing said: no final, and not in the turn
    [last, released] = order.accept(final(2))
    assert last == final(2)
    assert isinstance(released, ReleasedTurn)
    assert released.utterance_indexes == (0, 2)
    assert order.accept(turn(0, 0, 2)) == []  # duplicate
    assert (order.next_turn, order.settled_until) == (1, 3)


def test_turns_are_released_in_order() -> None:
    order = DeliveryOrder()
    order.accept(final(0))
    order.accept(final(1))
    assert order.accept(turn(1, 1, 1)) == []
    [first, second] = order.accept(turn(0, 0, 0))
    assert isinstance(first, ReleasedTurn) and isinstance(second, ReleasedTurn)
    assert (first.turn.turn_index, second.turn.turn_index) == (0, 1)


def test_a_turn_with_nothing_said_and_no_finals_is_consumed_silently() -> None:
    order = DeliveryOrder()
    order.accept(final(0, ""))
    assert order.accept(turn(0, 0, 0, "")) == []
    assert order.accept(turn(1, 1, 1, "", fallback=True)) == []
    assert order.next_turn == 1  # turn 1 waits for utterance 1


def test_complete_waits_for_the_turns_as_well() -> None:
    order = DeliveryOrder()
    order.accept(final(0))
    order.accept(SegmentationFinished("s1", 1, 1))
    assert not order.complete
    order.accept(turn(0, 0, 0))
    assert order.complete


def test_a_resumed_order_finds_its_unsettled_finals_again_in_the_log() -> None:
    order = DeliveryOrder(next_index=3, finals_delivered=3, next_turn=1, settled_until=1)
    for index in range(3):  # the results log, replayed from its start
        assert order.accept(final(index)) == []
    [released] = order.accept(turn(1, 1, 2))
    assert isinstance(released, ReleasedTurn)
    assert released.utterance_indexes == (1, 2)


def test_a_turn_with_fewer_words_than_its_finals_stands() -> None:
    """Its own decoding judges a turn, never a count of its finals' words: in noise the finals
    invent words and the turn has fewer ("For I tell the... It I have always talked...")."""
    order = DeliveryOrder()
    order.accept(final(0, "for I tell the it I have always talked half a morning"))
    order.accept(final(1, "to them and just now what I want to give with the answer"))
    [released] = order.accept(turn(0, 0, 1, "for I tell thee that I have already talked"))
    assert isinstance(released, ReleasedTurn) and not released.turn.fallback


def test_a_turn_the_model_withheld_as_another_language_never_erases_its_finals() -> None:
    """tiny.en doubts short English as it doubts Welsh ("replied he" was withheld): doubt
    about the language is no judgment that nothing was said, so the finals stand."""
    order = DeliveryOrder()
    order.accept(final(0, "replied he"))
    withheld = msgspec.structs.replace(turn(0, 0, 0, ""), withheld=True)
    [released] = order.accept(withheld)
    assert isinstance(released, ReleasedTurn)
    assert released.turn.fallback and [f.text for f in released.finals] == ["replied he"]


def test_a_withheld_turn_with_no_finals_says_nothing() -> None:
    order = DeliveryOrder()
    order.accept(final(0, ""))
    assert order.accept(msgspec.structs.replace(turn(0, 0, 0, ""), withheld=True)) == []
