"""Turns: a speaker's run of utterances up to a longer pause (pure, no I/O).

The segmenter core tells a :class:`TurnTracker` about every frame and every utterance; the
tracker keeps the open turn's audio (the utterances and the pauses between them, contiguous)
and says when the turn ends: at a pause of ``turn_gap_ms``, on ``finalize`` or end of stream,
or before an utterance that would take it past ``max_turn_s`` (so a turn fits one Whisper
window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from segmenter.options import SegmenterOptions

TurnEndReason = Literal["pause", "finalize", "max_length", "end_of_stream"]


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """Transcribe ``pcm`` (utterances ``first_utterance``..``last_utterance`` and the pauses
    between them) as a whole: its text settles theirs."""

    turn_index: int
    first_utterance: int
    last_utterance: int
    start_sample: int
    pcm: bytes
    speech_ratio: float
    reason: TurnEndReason


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """An open turn as a checkpoint keeps it."""

    first_utterance: int
    last_utterance: int
    """-1: no utterance of it has ended yet."""
    start_sample: int
    pcm: bytes
    end_bytes: int
    """Length of ``pcm`` at the end of its last utterance."""
    speech_frames: int
    pause_frames: int
    """Non-speech since its last utterance's speech ended."""


class TurnTracker:
    def __init__(self, options: SegmenterOptions, *, turns_ended: int = 0) -> None:
        self._options = options
        self._gap_frames = options.frames(options.turn_gap_ms)
        self._pad_bytes = options.frames(options.turn_pad_ms) * options.frame_samples * 2
        self.turns_ended = turns_ended
        self._open: OpenTurn | None = None
        self._pcm = bytearray()

    @property
    def open_turn(self) -> OpenTurn | None:
        if self._open is None:
            return None
        return _with_pcm(self._open, bytes(self._pcm))

    def restore(self, turn: OpenTurn | None) -> None:
        self._open = turn
        self._pcm = bytearray(turn.pcm if turn is not None else b"")

    def frame(self, pcm: bytes) -> None:
        """Every whole frame the segmenter consumes, before it looks at it."""
        if self._open is not None:
            self._pcm += pcm

    def utterance_begins(self, pcm: bytes, start_sample: int, index: int) -> list[TurnEnded]:
        """An utterance opens with ``pcm`` (its padding so far) at ``start_sample``."""
        events: list[TurnEnded] = []
        turn = self._open
        limit = self._options.max_turn_s - self._options.max_utterance_s
        long = turn is not None and (start_sample - turn.start_sample) / 16000 > limit
        if turn is not None and turn.last_utterance >= 0 and long:
            events.extend(self.end("max_length", until_sample=start_sample))
        if self._open is None:
            self._open = OpenTurn(index, -1, start_sample, b"", 0, 0, 0)
            self._pcm = bytearray(pcm)
        return events

    def utterance_ended(
        self, index: int, start_sample: int, samples: int, speech_frames: int, trailing: int
    ) -> None:
        turn = self._open
        assert turn is not None
        end_bytes = (start_sample + samples - turn.start_sample) * 2
        self._open = OpenTurn(
            turn.first_utterance,
            index,
            turn.start_sample,
            b"",
            end_bytes,
            turn.speech_frames + speech_frames,
            trailing,
        )

    def utterance_dropped(self) -> None:
        """The utterance was too short to keep: a turn that holds nothing else goes too."""
        if self._open is not None and self._open.last_utterance < 0:
            self._open = None
            self._pcm.clear()

    def idle_frame(self) -> list[TurnEnded]:
        """A frame between utterances: the pause grows; at ``turn_gap_ms`` the turn ends."""
        turn = self._open
        if turn is None or turn.last_utterance < 0:
            return []
        pause = turn.pause_frames + 1
        self._open = OpenTurn(
            turn.first_utterance,
            turn.last_utterance,
            turn.start_sample,
            b"",
            turn.end_bytes,
            turn.speech_frames,
            pause,
        )
        if pause >= self._gap_frames:
            return self.end("pause")
        return []

    def end(self, reason: TurnEndReason, *, until_sample: int | None = None) -> list[TurnEnded]:
        """Ends the open turn; its audio runs ``turn_pad_ms`` past its last utterance, but
        never into ``until_sample`` (where the next one begins)."""
        turn = self._open
        if turn is None:
            return []
        self._open = None
        stop = turn.end_bytes + self._pad_bytes
        if until_sample is not None:
            stop = min(stop, max(turn.end_bytes, (until_sample - turn.start_sample) * 2))
        pcm = bytes(self._pcm[:stop])
        self._pcm.clear()
        if turn.last_utterance < 0:
            return []
        frames = max(1, turn.end_bytes // (self._options.frame_samples * 2))
        event = TurnEnded(
            self.turns_ended,
            turn.first_utterance,
            turn.last_utterance,
            turn.start_sample,
            pcm,
            min(1.0, turn.speech_frames / frames),
            reason,
        )
        self.turns_ended += 1
        return [event]


def _with_pcm(turn: OpenTurn, pcm: bytes) -> OpenTurn:
    return OpenTurn(
        turn.first_utterance,
        turn.last_utterance,
        turn.start_sample,
        pcm,
        turn.end_bytes,
        turn.speech_frames,
        turn.pause_frames,
    )
