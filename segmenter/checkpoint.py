"""The segmenter's checkpoint of a session: what a segmenter taking the session over needs.

A Redis hash (``shared.keys.session_checkpoint``), written by the segmenter that owns the
session between utterances and read only by the one that takes it over, so it lives here,
beside its only users, not in the shared schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import SchemaError
from shared.schema import Fields, SessionOpened, entry_field


@dataclass(frozen=True, slots=True)
class SegmenterCheckpoint:
    """A session's segmentation state between utterances, and the last audio entry it
    covers: a segmenter taking the session over restores it and replays what came after."""

    opened: SessionOpened
    after_entry: str
    """Stream id of the last audio entry the state includes (``0-0``: none)."""
    position: int
    pending: bytes
    recent_pcm: bytes
    """The pre-speech padding frames, concatenated (each ``frame_bytes`` long)."""
    recent_speech: str
    """One ``1``/``0`` per padding frame."""
    onset: str
    utterances: int
    turns: int = 0
    turn: str = ""
    """The open turn's numbers as JSON (``first``, ``last``, ``start``, ``end_bytes``,
    ``speech``, ``pause``), or '' for none."""
    turn_pcm: bytes = b""

    def encode(self) -> dict[str, bytes]:
        fields = self.opened.encode()
        fields.update(
            after=self.after_entry.encode(),
            position=str(self.position).encode(),
            pending=self.pending,
            recent_pcm=self.recent_pcm,
            recent_speech=self.recent_speech.encode(),
            onset=self.onset.encode(),
            utterances=str(self.utterances).encode(),
            turns=str(self.turns).encode(),
            turn=self.turn.encode(),
            turn_pcm=self.turn_pcm,
        )
        return fields

    @classmethod
    def decode(cls, fields: Fields) -> SegmenterCheckpoint:
        opened = SessionOpened.decode(fields)
        try:
            return cls(
                opened=opened,
                after_entry=entry_field(fields, "after").decode(),
                position=int(entry_field(fields, "position")),
                pending=entry_field(fields, "pending"),
                recent_pcm=entry_field(fields, "recent_pcm"),
                recent_speech=entry_field(fields, "recent_speech").decode(),
                onset=entry_field(fields, "onset").decode(),
                utterances=int(entry_field(fields, "utterances")),
                turns=int(fields.get(b"turns", b"0")),
                turn=fields.get(b"turn", b"").decode(),
                turn_pcm=fields.get(b"turn_pcm", b""),
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise SchemaError(f"bad checkpoint: {exc}") from exc
