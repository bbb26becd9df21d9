"""Per-session delivery rules, without I/O: finals once and in order, each turn once and in
order after the finals it settles, partials never stale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from shared.schema import (
    FinalTranscript,
    PartialTranscript,
    SegmentationFinished,
    SessionEvent,
    TranscriptResult,
    TurnTranscript,
    UtteranceFailed,
)

OPEN_FINALS_KEPT = 500
"""Delivered finals waiting for their turn, at most (a turn settles a handful)."""


@dataclass(frozen=True, slots=True)
class ReleasedTurn:
    """A turn to send: ``finals`` are the delivered finals (non-empty) that it settles."""

    turn: TurnTranscript
    finals: tuple[TranscriptResult, ...]

    @property
    def utterance_indexes(self) -> tuple[int, ...]:
        return tuple(f.utterance_index for f in self.finals)


def falls_back(*, withheld: bool, final_texts: Sequence[str]) -> bool:
    """Whether a settled turn gives way to the finals it settles, judged by the turn's own
    decoding, never by comparing it with theirs: only when the model withheld it as another
    language (doubt about the language is no judgment that nothing was said). A decoding that
    stopped short of its audio, or loops even without its prompt, is never settled at all
    (the transcriber publishes the turn as a fallback). The rule it replaces kept the finals
    when the turn had under 0.85 of their words, which judged the better text by the worse one
    where the finals invented words (noise); without it, settled WER on audio-dev's tuning half
    0.0837 -> 0.0797 and on its report half 0.0660 either way
    (docs/benchmarks/tune-rules-audio-dev-*-half.json)."""
    return withheld and any(final_texts)


Deliverable = PartialTranscript | FinalTranscript | UtteranceFailed | ReleasedTurn


class DeliveryOrder:
    """Finals are released in utterance order, each index once; empty finals are consumed
    silently (nothing was said). A partial is released only while its utterance is open and
    only if newer than the last one released."""

    def __init__(
        self,
        *,
        max_pending: int = 1000,
        next_index: int = 0,
        finals_delivered: int = 0,
        next_turn: int = 0,
        settled_until: int = 0,
    ) -> None:
        """``next_index``, ``finals_delivered``, ``next_turn`` and ``settled_until``: where a
        resumed session's delivery was (the finals it had that no turn settled yet come
        back with the session's results log, as duplicates)."""
        self.next_index = next_index
        self.expected_utterances: int | None = None
        self.expected_turns = -1
        self.finals_delivered = finals_delivered
        self.next_turn = next_turn
        self.settled_until = settled_until
        """Utterances before this one are settled by a delivered turn."""
        self._pending: dict[int, FinalTranscript | UtteranceFailed] = {}
        self._turns: dict[int, TurnTranscript] = {}
        self._open: dict[int, TranscriptResult] = {}
        """Delivered, non-empty finals that no turn has settled yet."""
        self._last_partial = (next_index - 1, 1 << 30)
        self._max_pending = max_pending

    @property
    def complete(self) -> bool:
        """Every utterance and turn the segmenter committed has been resolved."""
        return (
            self.expected_utterances is not None
            and self.next_index >= self.expected_utterances
            and self.next_turn >= self.expected_turns
        )

    def accept(self, event: SessionEvent) -> list[Deliverable]:
        if isinstance(event, SegmentationFinished):
            self.expected_utterances = event.utterances
            self.expected_turns = event.turns
            return []
        if isinstance(event, PartialTranscript):
            return self._partial(event)
        if isinstance(event, TurnTranscript):
            if event.turn_index >= self.next_turn and event.turn_index not in self._turns:
                if len(self._turns) >= self._max_pending:
                    raise OverflowError("too many turns waiting for their finals")
                self._turns[event.turn_index] = event
            return self._release_turns()
        index = (
            event.result.utterance_index
            if isinstance(event, FinalTranscript)
            else event.utterance_index
        )
        if index < self.next_index or index in self._pending:
            if isinstance(event, FinalTranscript) and index < self.next_index:
                self._keep_open(event.result)  # a resumed session's, from the log
            return []  # duplicate
        if len(self._pending) >= self._max_pending:
            raise OverflowError("too many finals waiting for an earlier one")
        self._pending[index] = event
        released: list[Deliverable] = []
        while self.next_index in self._pending:
            ready = self._pending.pop(self.next_index)
            self.next_index += 1
            if isinstance(ready, FinalTranscript) and not ready.result.text:
                continue
            if isinstance(ready, FinalTranscript):
                self.finals_delivered += 1
                self._keep_open(ready.result)
            released.append(ready)
        released.extend(self._release_turns())
        return released

    def _keep_open(self, result: TranscriptResult) -> None:
        index = result.utterance_index
        if result.text and index >= self.settled_until and index not in self._open:
            self._open[index] = result
            if len(self._open) > OPEN_FINALS_KEPT:
                del self._open[min(self._open)]

    def _release_turns(self) -> list[Deliverable]:
        """Turns in order, each once all of its utterances are resolved."""
        released: list[Deliverable] = []
        while (turn := self._turns.get(self.next_turn)) is not None:
            if turn.last_utterance >= self.next_index:
                break
            del self._turns[self.next_turn]
            self.next_turn += 1
            span = range(turn.first_utterance, turn.last_utterance + 1)
            finals = tuple(self._open.pop(i) for i in sorted(self._open) if i in span)
            self.settled_until = max(self.settled_until, turn.last_utterance + 1)
            said = [f.text for f in finals]
            if not turn.fallback and falls_back(withheld=turn.withheld, final_texts=said):
                turn = msgspec.structs.replace(turn, fallback=True)
            if finals or (turn.result.text and not turn.fallback):
                released.append(ReleasedTurn(turn, finals))
        return released

    def _partial(self, event: PartialTranscript) -> list[Deliverable]:
        key = (event.result.utterance_index, event.result.partial_seq)
        if key[0] < self.next_index or key[0] in self._pending or key <= self._last_partial:
            return []
        self._last_partial = key
        return [event] if event.result.text else []
