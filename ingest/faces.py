"""The wire protocols a session can be spoken in, each a thin face over one session.

A connection's session decides in protocol v1's terms (``ingest.protocol``): it reads
commands, and builds v1 messages that its outbox keeps. A :class:`Face` turns a client's text
frames into what they ask (:class:`FaceInput`: a command, audio carried in the frame, replies
of its own) and the session's messages into the frames its clients expect; protocol v1's own
face passes them through. Faces hold only their protocol's per-connection
state and do no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ingest.protocol import ClientCommand, parse_client_text


@dataclass(frozen=True, slots=True)
class FaceInput:
    """What a client's text frame asks of its session."""

    command: ClientCommand | None = None
    audio: bytes = b""
    """Audio carried in the text frame (OpenAI's Realtime API sends it base64 in JSON)."""
    replies: tuple[str, ...] = ()
    """Frames for the client at once, in its protocol (a refusal that does not end the
    session, an acknowledgement)."""
    begins: bool = False
    """The session's first audio: a face configured before it (Realtime) opens it now."""


class Face(Protocol):
    name: str
    """Reported in metrics and logs: ``v1``, ``deepgram``..."""
    resumable: bool
    """Whether a dropped connection's session waits for its client to resume it."""
    idle_timeout_s: float | None
    """How long the client may send nothing before the session ends (None: the server's)."""

    def read(self, text: str) -> FaceInput:
        """What a client text frame asks for; a :class:`ProtocolError` for one that ends the
        session."""
        ...

    def frames(self, message: str) -> list[str]:
        """What the client receives for one of the session's v1 messages (maybe nothing)."""
        ...

    def close(self, code: int, reason: str) -> tuple[int, str]:
        """The close code and reason this face's clients expect for the session's own."""
        ...


class StreamFace:
    """Protocol v1 (``/v1/stream``): the session's messages as they are."""

    name = "v1"
    resumable = True
    idle_timeout_s: float | None = None

    def read(self, text: str) -> FaceInput:
        return FaceInput(command=parse_client_text(text))

    def frames(self, message: str) -> list[str]:
        return [message]

    def close(self, code: int, reason: str) -> tuple[int, str]:
        return code, reason


class GrpcFace(StreamFace):
    """gRPC's ``Transcription.Stream``: protocol v1's frames (``ingest.grpc_wire`` types
    them); a cancelled call's session ends with it."""

    name = "grpc"
    resumable = False
