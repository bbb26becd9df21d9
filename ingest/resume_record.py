"""The record of a resumable session: what an ingest node needs to take over a session whose
client reconnects to it (``shared.keys.resumable_session``). Written and read only by ingest
nodes, so it lives in ingest, not in the shared schema.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.errors import SchemaError
from shared.schema import SCHEMA_VERSION


class ResumableSession(msgspec.Struct, frozen=True):
    """What an ingest node needs to take over a session whose client reconnects to it."""

    session_id: str
    secret_sha256: str
    """Hex digest of the resume token's secret part; the secret itself is never stored."""
    sample_rate: int
    encoding: str
    language: str | None
    partials: bool
    name: str
    room: str | None
    listen: bool
    translate: tuple[str, ...]
    may_speak: bool
    opened_at: float
    read: str = ""
    v: Literal[1] = SCHEMA_VERSION

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> ResumableSession:
        try:
            return _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise SchemaError(f"bad resumable session: {exc}") from exc


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ResumableSession)
