"""Per-session delivery rules, without I/O: finals once and in order, partials never stale."""

from __future__ import annotations

from shared.schema import (
    FinalTranscript,
    PartialTranscript,
    SegmentationFinished,
    SessionEvent,
    UtteranceFailed,
)

Deliverable = PartialTranscript | FinalTranscript | UtteranceFailed


class DeliveryOrder:
    """Finals are released in utterance order, each index once; empty finals are consumed
    silently (nothing was said). A partial is released only while its utterance is open and
    only if newer than the last one released."""

    def __init__(
        self, *, max_pending: int = 1000, next_index: int = 0, finals_delivered: int = 0
    ) -> None:
        """``next_index`` and ``finals_delivered``: where a resumed session's delivery was."""
        self.next_index = next_index
        self.expected_utterances: int | None = None
        self.finals_delivered = finals_delivered
        self._pending: dict[int, FinalTranscript | UtteranceFailed] = {}
        self._last_partial = (next_index - 1, 1 << 30)
        self._max_pending = max_pending

    @property
    def complete(self) -> bool:
        """Every utterance the segmenter committed has been resolved."""
        return self.expected_utterances is not None and self.next_index >= self.expected_utterances

    def accept(self, event: SessionEvent) -> list[Deliverable]:
        if isinstance(event, SegmentationFinished):
            self.expected_utterances = event.utterances
            return []
        if isinstance(event, PartialTranscript):
            return self._partial(event)
        index = (
            event.result.utterance_index
            if isinstance(event, FinalTranscript)
            else event.utterance_index
        )
        if index < self.next_index or index in self._pending:
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
            released.append(ready)
        return released

    def _partial(self, event: PartialTranscript) -> list[Deliverable]:
        key = (event.result.utterance_index, event.result.partial_seq)
        if key[0] < self.next_index or key[0] in self._pending or key <= self._last_partial:
            return []
        self._last_partial = key
        return [event] if event.result.text else []
