"""The pure segmentation core: ``feed(pcm) -> events``. No I/O, no clocks.

Audio is 16 kHz mono s16le. A :class:`SpeechDetector` classifies fixed-length frames; the
segmenter turns that into utterances with pre-speech padding, a hangover, a speculative cut
at the first pause, partial snapshots while speech goes on, and a cut at the quietest point
when an utterance grows too long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from segmenter.options import SegmenterOptions
from segmenter.turns import OpenTurn, TurnEnded, TurnTracker


class SpeechDetector(Protocol):
    def is_speech(self, frame: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class PartialReady:
    utterance_index: int
    partial_seq: int
    start_sample: int
    pcm: bytes


@dataclass(frozen=True, slots=True)
class SpeculationReady:
    """Speech paused: transcribe ``pcm`` now; it becomes the final if the pause holds."""

    utterance_index: int
    revision: int
    start_sample: int
    pcm: bytes
    speech_ratio: float


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech came back during the hangover: speculation ``revision`` is void."""

    utterance_index: int
    revision: int


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    utterance_index: int
    start_sample: int
    pcm: bytes
    speech_ratio: float
    reason: Literal["pause", "finalize", "max_length", "end_of_stream"]
    committed_revision: int | None
    """The speculation whose audio is this utterance (nothing but silence came after it)."""


SegmenterEvent = PartialReady | SpeculationReady | SpeechResumed | UtteranceEnded | TurnEnded


@dataclass(frozen=True, slots=True)
class IdleState:
    """Everything a segmenter holds between utterances: enough to carry on exactly where it
    was (the checkpoint a segmenter taking over a session starts from)."""

    position: int
    """Samples consumed as whole frames."""
    pending: bytes
    """Bytes of a frame not yet whole."""
    recent: tuple[tuple[bytes, bool], ...]
    """The pre-speech padding so far: (frame, was speech)."""
    onset: tuple[bool, ...]
    utterances_ended: int
    turns_ended: int = 0
    turn: OpenTurn | None = None
    """The turn in progress (its utterances so far and the pause after them)."""


@dataclass(slots=True)
class _Frame:
    pcm: bytes
    speech: bool
    energy: float


class UtteranceSegmenter:
    """Cuts one session's audio into utterances. One instance per session."""

    def __init__(self, options: SegmenterOptions, detector: SpeechDetector) -> None:
        self.options = options
        self._detector = detector
        self._frame_bytes = options.frame_samples * 2
        self._pending = bytearray()
        self._position = 0
        """Samples consumed as whole frames."""
        self._recent: deque[_Frame] = deque(maxlen=options.frames(options.pre_speech_pad_ms))
        self._onset_frames = options.frames(options.onset_window_ms)
        self._onset: deque[bool] = deque(maxlen=self._onset_frames)
        self._utterance: list[_Frame] | None = None
        self._start_sample = 0
        self._speech_frames = 0
        self._trailing_silence = 0
        self._revision = 0
        self._speculating = False
        self._partial_seq = 0
        self._speech_since_partial = 0
        self.utterances_ended = 0
        self._turns = TurnTracker(options)

    def snapshot(self) -> IdleState | None:
        """The state between utterances, or None while an utterance is open."""
        if self._utterance is not None:
            return None
        return IdleState(
            position=self._position,
            pending=bytes(self._pending),
            recent=tuple((f.pcm, f.speech) for f in self._recent),
            onset=tuple(self._onset),
            utterances_ended=self.utterances_ended,
            turns_ended=self._turns.turns_ended,
            turn=self._turns.open_turn,
        )

    @classmethod
    def restore(
        cls, options: SegmenterOptions, detector: SpeechDetector, state: IdleState
    ) -> UtteranceSegmenter:
        """A segmenter that carries on from ``state`` as if it had fed everything before."""
        segmenter = cls(options, detector)
        segmenter._position = state.position
        segmenter._pending = bytearray(state.pending)
        segmenter._recent.extend(_Frame(pcm, speech, _energy(pcm)) for pcm, speech in state.recent)
        segmenter._onset.extend(state.onset)
        segmenter.utterances_ended = state.utterances_ended
        segmenter._turns = TurnTracker(options, turns_ended=state.turns_ended)
        segmenter._turns.restore(state.turn)
        return segmenter

    @property
    def position_s(self) -> float:
        return self._position / 16000

    @property
    def turns_ended(self) -> int:
        return self._turns.turns_ended

    @property
    def in_utterance(self) -> bool:
        return self._utterance is not None

    def feed(self, pcm: bytes) -> list[SegmenterEvent]:
        if len(pcm) % 2:
            raise ValueError("pcm must be whole 16-bit samples")
        self._pending += pcm
        events: list[SegmenterEvent] = []
        whole = len(self._pending) - len(self._pending) % self._frame_bytes
        for offset in range(0, whole, self._frame_bytes):
            frame = bytes(self._pending[offset : offset + self._frame_bytes])
            events.extend(self._frame(frame))
        del self._pending[:whole]
        return events

    def finalize(self) -> list[SegmenterEvent]:
        """End the current utterance and turn now (client ``finalize``)."""
        events = self._end("finalize")
        events.extend(self._turns.end("finalize"))
        return events

    def flush(self) -> list[SegmenterEvent]:
        """End of stream: the partial frame left over joins the last utterance."""
        if self._utterance is not None and self._pending:
            tail = bytes(self._pending)
            self._utterance.append(_Frame(tail, False, _energy(tail)))
        self._pending.clear()
        events = self._end("end_of_stream")
        events.extend(self._turns.end("end_of_stream"))
        return events

    # -- per frame ---------------------------------------------------------------------

    def _frame(self, pcm: bytes) -> Iterable[SegmenterEvent]:
        frame = _Frame(pcm, self._detector.is_speech(pcm), _energy(pcm))
        self._position += len(pcm) // 2
        self._turns.frame(pcm)
        if self._utterance is None:
            return self._silence_frame(frame)
        return self._speech_frame(frame)

    def _silence_frame(self, frame: _Frame) -> list[SegmenterEvent]:
        self._recent.append(frame)
        self._onset.append(frame.speech)
        speech = sum(self._onset)
        if len(self._onset) < self._onset_frames or speech < self.options.onset_ratio * len(
            self._onset
        ):
            return list(self._turns.idle_frame())
        frames = list(self._recent)
        return list(self._begin(frames, self._position - sum(len(f.pcm) for f in frames) // 2))

    def _begin(self, frames: list[_Frame], start_sample: int) -> list[TurnEnded]:
        turn_events = self._turns.utterance_begins(
            b"".join(f.pcm for f in frames), start_sample, self.utterances_ended
        )
        self._utterance = frames
        self._start_sample = start_sample
        self._speech_frames = sum(f.speech for f in frames)
        self._trailing_silence = _trailing_silence(frames)
        self._speech_since_partial = self._speech_frames
        self._revision = 0
        self._speculating = False
        self._partial_seq = 0
        self._recent.clear()
        self._onset.clear()
        return turn_events

    def _speech_frame(self, frame: _Frame) -> list[SegmenterEvent]:
        assert self._utterance is not None
        options = self.options
        self._utterance.append(frame)
        events: list[SegmenterEvent] = []
        if frame.speech:
            self._speech_frames += 1
            self._speech_since_partial += 1
            self._trailing_silence = 0
            if self._speculating:
                self._speculating = False
                events.append(SpeechResumed(self.utterances_ended, self._revision))
        else:
            self._trailing_silence += 1
        if self._trailing_silence >= self._hangover_frames():
            events.extend(self._end("pause"))
            return events
        if (
            options.speculate_after_ms
            and not self._speculating
            and self._trailing_silence == options.frames(options.speculate_after_ms)
            and self._has_enough_speech()
        ):
            self._speculating = True
            self._revision += 1
            events.append(
                SpeculationReady(
                    self.utterances_ended,
                    self._revision,
                    self._start_sample,
                    self._pcm(),
                    self._speech_ratio(),
                )
            )
        elif (
            options.partial_interval_ms
            and frame.speech
            and self._speech_since_partial >= self._partial_interval_frames()
            and len(self._utterance) >= options.frames(options.min_partial_ms)
        ):
            self._speech_since_partial = 0
            self._partial_seq += 1
            events.append(
                PartialReady(
                    self.utterances_ended, self._partial_seq, self._start_sample, self._pcm()
                )
            )
        if len(self._utterance) * options.frame_ms >= options.max_utterance_s * 1000:
            events.extend(self._cut_at_quietest())
        return events

    # -- ending ------------------------------------------------------------------------

    def _end(
        self, reason: Literal["pause", "finalize", "max_length", "end_of_stream"]
    ) -> list[SegmenterEvent]:
        frames = self._utterance
        if frames is None:
            self._onset.clear()
            return []
        event: list[SegmenterEvent] = []
        if self._has_enough_speech():
            pcm = self._pcm()
            event.append(
                UtteranceEnded(
                    self.utterances_ended,
                    self._start_sample,
                    pcm,
                    self._speech_ratio(),
                    reason,
                    self._revision if self._speculating else None,
                )
            )
            self._turns.utterance_ended(
                self.utterances_ended,
                self._start_sample,
                len(pcm) // 2,
                self._speech_frames,
                self._trailing_silence,
            )
            self.utterances_ended += 1
        else:
            self._turns.utterance_dropped()
        self._utterance = None
        self._speculating = False
        self._recent.clear()
        self._onset.clear()
        return event

    def _cut_at_quietest(self) -> list[SegmenterEvent]:
        assert self._utterance is not None
        frames = self._utterance
        search = self.options.frames(self.options.cut_search_s * 1000)
        first = len(frames) - search
        window = [f.energy for f in frames[first:]]
        cut = first + int(np.argmin(window)) + 1
        rest = frames[cut:]
        rest_start = self._start_sample + sum(len(f.pcm) for f in frames[:cut]) // 2
        self._utterance = frames[:cut]
        self._speculating = False
        events = self._end("max_length")
        events.extend(self._begin(rest, rest_start))
        return events

    # -- helpers -----------------------------------------------------------------------

    def _hangover_frames(self) -> int:
        """The pause that ends the utterance: ``hangover_ms`` until ``long_utterance_s``, then
        ``long_hangover_ms`` shrinking towards the speculation point as the cap nears, so
        continuous speech breaks at a pause rather than at ``max_utterance_s``."""
        assert self._utterance is not None
        options = self.options
        length_s = len(self._utterance) * options.frame_ms / 1000
        if length_s < options.long_utterance_s:
            return options.frames(options.hangover_ms)
        progress = (length_s - options.long_utterance_s) / (
            options.max_utterance_s - options.long_utterance_s
        )
        shortest = min(options.long_hangover_ms, options.speculate_after_ms + 2 * options.frame_ms)
        ms = options.long_hangover_ms - min(1.0, progress) * (options.long_hangover_ms - shortest)
        return options.frames(max(shortest, ms))

    def _partial_interval_frames(self) -> int:
        """Longer utterances cost more per partial, so their partials come less often."""
        assert self._utterance is not None
        if self._partial_seq == 0:
            return self.options.frames(self.options.first_partial_ms)
        base = self.options.frames(self.options.partial_interval_ms)
        return max(base, len(self._utterance) // 10)

    def _has_enough_speech(self) -> bool:
        return self._speech_frames * self.options.frame_ms >= self.options.min_speech_ms

    def _speech_ratio(self) -> float:
        assert self._utterance is not None
        return self._speech_frames / max(1, len(self._utterance))

    def _pcm(self) -> bytes:
        assert self._utterance is not None
        return b"".join(f.pcm for f in self._utterance)


def _energy(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


def _trailing_silence(frames: list[_Frame]) -> int:
    count = 0
    for frame in reversed(frames):
        if frame.speech:
            break
        count += 1
    return count
