"""OpenAI's Realtime API for transcription (``GET /v1/realtime?intent=transcription``) as a
face of the session, no I/O.

Clients (the ``openai`` SDK's realtime connection, pipecat's ``OpenAIRealtimeSTTService``,
LiveKit's OpenAI STT) change only their base URL. Before its first audio a client configures
the session (``session.update``, or the older ``transcription_session.update``); the session
opens with that configuration at the first ``input_audio_buffer.append``. Then an item is a
turn: ``input_audio_buffer.speech_started`` when its speech is first heard,
``conversation.item.input_audio_transcription.delta`` with each final's text (committed
words only: nothing a later event takes back), and at the turn's end
``input_audio_buffer.speech_stopped``, ``.committed`` and ``...completed`` with the turn's
settled text. A client event that cannot be read is answered by an ``error`` event and the
session carries on, as at OpenAI.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ingest.faces import FaceInput
from ingest.protocol import CLOSE_BAD_PARAMETER, ClientCommand
from ingest.realtime_config import (
    RealtimeConfig,
    RealtimeError,
    older_session_object,
    session_object,
    updated,
    updated_older,
)
from ingest.realtime_events import (
    APPEND,
    BUFFER_COMMAND,
    ENVELOPE,
    OLDER_SESSION_UPDATE,
    SESSION_UPDATE,
)
from shared.client_messages import Error, Transcript, Turn, decode
from shared.errors import ProtocolError

REALTIME_PATH = "/v1/realtime"
_QUERY = frozenset({"intent", "model", "room", "name", "token"})
_CONVERSATION_EVENTS = frozenset(
    {
        "response.create",
        "response.cancel",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "output_audio_buffer.clear",
    }
)


@dataclass(frozen=True, slots=True)
class RealtimeRequest:
    model: str | None
    ours: dict[str, str]
    """streamscribe's own query parameters (``room``, ``name``, ``token``)."""


def parse_realtime_request(query: Mapping[str, Sequence[str]]) -> RealtimeRequest:
    """``/v1/realtime``'s query string: transcription sessions only."""
    for name, values in query.items():
        if name not in _QUERY:
            raise ProtocolError(
                "invalid_parameter", f"{name}: unknown parameter", CLOSE_BAD_PARAMETER
            )
        if len(values) != 1:
            raise ProtocolError(
                "invalid_parameter", f"{name}: given more than once", CLOSE_BAD_PARAMETER
            )
    one = {name: values[0] for name, values in query.items()}
    if one.get("intent") != "transcription":
        raise ProtocolError(
            "invalid_parameter",
            "intent: this server serves transcription sessions only (?intent=transcription)",
            CLOSE_BAD_PARAMETER,
        )
    ours = {k: v for k, v in one.items() if k in ("room", "name", "token")}
    return RealtimeRequest(model=one.get("model"), ours=ours)


@dataclass(slots=True)
class _Item:
    item_id: str
    start_s: float
    utterances: list[str] = field(default_factory=list)
    deltas: int = 0
    committed: bool = False
    """Its audio was committed by the client: later audio is another item."""


class RealtimeFace:
    """One Realtime client's view of its session."""

    name = "openai-realtime"
    resumable = False
    idle_timeout_s: float | None = None

    def __init__(
        self,
        session_id: str,
        *,
        english_only: bool,
        hold_after_gap_s: float,
        max_audio_bytes: int,
        model: str | None = None,
    ) -> None:
        """``hold_after_gap_s``: a final that follows the previous one after at least this
        pause may begin the next turn; its delta waits for the turn before it to settle."""
        self.session_id = session_id
        self.config = RealtimeConfig(model=model or "whisper-1")
        self.started = False
        """The session opened (at the first audio): its configuration is fixed."""
        self._english_only = english_only
        self._hold_after_gap_s = hold_after_gap_s
        self._max_audio_bytes = max_audio_bytes
        self._events = 0
        self._items = 0
        self._open: _Item | None = None
        self._previous_item: str | None = None
        self._held: list[Transcript] = []
        self._last_final_end: float | None = None
        self._appended_since_commit = 0

    # -- before the session opens ------------------------------------------------------------

    def greeting(self) -> str:
        return self._event("session.created", session=session_object(self.config, self.session_id))

    def stream_query(self) -> dict[str, str]:
        """The session's parameters in ``/v1/stream``'s terms."""
        config = self.config
        language = config.language or ("en" if self._english_only else "auto")
        return {
            "encoding": config.encoding.value,
            "sample_rate": str(config.sample_rate),
            "language": language,
            "partials": str(config.server_vad).lower(),  # they tell when speech started
        }

    # -- client events --------------------------------------------------------------------

    def read(self, text: str) -> FaceInput:
        """What a client event asks; ``begins`` on the first audio of the session."""
        try:
            return self._read(text)
        except RealtimeError as exc:
            return FaceInput(replies=(self._error(exc.message, exc.code, exc.param),))

    def _read(self, text: str) -> FaceInput:
        if len(text) > self._max_audio_bytes * 4 // 3 + 4096:
            raise RealtimeError("the event is too large", code="event_too_large")
        try:
            envelope = ENVELOPE.decode(text)
        except (msgspec.DecodeError, RecursionError):
            raise RealtimeError(
                "the event is not a JSON object with a type", code="invalid_json"
            ) from None
        kind = envelope.type
        if kind == "input_audio_buffer.append":
            return self._append(text)
        if kind == "input_audio_buffer.commit":
            _strict(BUFFER_COMMAND, text)
            return self._commit()
        if kind == "input_audio_buffer.clear":
            _strict(BUFFER_COMMAND, text)
            return FaceInput(replies=(self._event("input_audio_buffer.cleared"),))
        if kind == "session.update":
            update = _strict(SESSION_UPDATE, text)
            return self._update(
                lambda c: updated(c, update.session, english_only=self._english_only), False
            )
        if kind == "transcription_session.update":
            older = _strict(OLDER_SESSION_UPDATE, text)
            return self._update(
                lambda c: updated_older(c, older.session, english_only=self._english_only), True
            )
        if kind in _CONVERSATION_EVENTS:
            raise RealtimeError(
                f"{kind} is not available in a transcription session",
                code="unsupported_event",
                param="type",
            )
        raise RealtimeError(f"unknown event type {kind[:64]!r}", code="invalid_value", param="type")

    def _update(self, change: Any, older: bool) -> FaceInput:
        config = change(self.config)
        if self.started and config != self.config:
            raise RealtimeError(
                "the session's format, language, prompt and turn detection are fixed once "
                "audio has begun: send session.update before the first input_audio_buffer.append",
                code="session_already_started",
                param="session",
            )
        self.config = config
        if older:
            body = older_session_object(config, self.session_id)
            return FaceInput(replies=(self._event("transcription_session.updated", session=body),))
        body = session_object(config, self.session_id)
        return FaceInput(replies=(self._event("session.updated", session=body),))

    def first_audio(self, audio: bytes) -> FaceInput:
        """Raw audio in a binary frame (an extension: OpenAI's clients send events only)."""
        return self._heard(audio)

    def _heard(self, audio: bytes) -> FaceInput:
        begins = not self.started
        self.started = True
        self._appended_since_commit += len(audio)
        return FaceInput(audio=audio, begins=begins)

    def _append(self, text: str) -> FaceInput:
        event = _strict(APPEND, text)
        try:
            audio = base64.b64decode(event.audio, validate=True)
        except (binascii.Error, ValueError):
            raise RealtimeError("audio is not valid base64", param="audio") from None
        if len(audio) > self._max_audio_bytes:
            raise RealtimeError(
                f"at most {self._max_audio_bytes} bytes of audio per event", param="audio"
            )
        if len(audio) % self.config.encoding.sample_width:
            raise RealtimeError("audio is not a whole number of 16-bit samples", param="audio")
        if not audio:  # no audio: it neither opens the session nor counts as appended
            raise RealtimeError("audio is empty", code="invalid_value", param="audio")
        return self._heard(audio)

    def _commit(self) -> FaceInput:
        if not self._appended_since_commit:
            raise RealtimeError(
                "the input audio buffer is empty: nothing was appended since the last commit",
                code="input_audio_buffer_commit_empty",
            )
        self._appended_since_commit = 0
        item = self._open or self._new_item(self._last_final_end or 0.0)
        item.committed = True
        self._open = item
        replies: tuple[str, ...] = ()
        if not self.config.server_vad:  # with VAD it is said at the turn's end
            replies = (self._committed(item),)
        return FaceInput(command=ClientCommand.FINALIZE, replies=replies)

    # -- the session's messages -----------------------------------------------------------

    def frames(self, message: str) -> list[str]:
        decoded = decode(message)
        if isinstance(decoded, Transcript):
            return self._transcript(decoded)
        if isinstance(decoded, Turn):
            return self._turn(decoded)
        if isinstance(decoded, Error):
            return [self._error(decoded.message, decoded.code, None, kind="server_error")]
        return []  # the greeting was sent before the session opened; rooms have no form

    def close(self, code: int, reason: str) -> tuple[int, str]:
        return code, reason

    def _transcript(self, message: Transcript) -> list[str]:
        out: list[str] = []
        if not message.is_final:
            if self._open is None and not self._held:
                out += self._open_item(message.start)
            return out
        if self._ambiguous(message):
            self._held.append(message)  # the turn before it settles first, and says
            return out
        return out + self._delta(message)

    def _ambiguous(self, message: Transcript) -> bool:
        """Whether the final may begin a turn after the open item's (unsettled) one."""
        item = self._open
        if self._held:
            return True
        if item is None or not item.utterances:
            return False
        gap = message.start - (self._last_final_end or message.start)
        return item.committed or gap >= self._hold_after_gap_s

    def _delta(self, message: Transcript) -> list[str]:
        out: list[str] = []
        if self._open is None:
            out += self._open_item(message.start)
        item = self._open
        assert item is not None
        item.utterances.append(message.utterance_id)
        self._last_final_end = message.end
        text = message.text.strip()
        if text:
            out.append(
                self._event(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=item.item_id,
                    content_index=0,
                    delta=text if not item.deltas else " " + text,
                )
            )
            item.deltas += 1
        return out

    def _turn(self, turn: Turn) -> list[str]:
        ids = set(turn.utterance_ids)
        out: list[str] = []
        mine = [m for m in self._held if m.utterance_id in ids]
        self._held = [m for m in self._held if m.utterance_id not in ids]
        for held in mine:
            out += self._delta(held)
        if self._open is None:
            out += self._open_item(turn.start)
        item = self._open
        assert item is not None
        if self.config.server_vad:
            out.append(
                self._event(
                    "input_audio_buffer.speech_stopped",
                    item_id=item.item_id,
                    audio_end_ms=round(turn.end * 1000),
                )
            )
            out.append(self._committed(item))
        elif not item.committed:  # the stream ended, or the turn reached its maximum length
            out.append(self._committed(item))
        out.append(
            self._event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item.item_id,
                content_index=0,
                transcript=turn.text,
                usage={"type": "duration", "seconds": round(max(0.0, turn.end - turn.start), 3)},
            )
        )
        self._open = None
        later, self._held = self._held, []
        for held in later:  # the next turn's finals, waiting for this one
            out += self._delta(held)
        return out

    def _open_item(self, start_s: float) -> list[str]:
        item = self._new_item(start_s)
        self._open = item
        if not self.config.server_vad:
            return []
        return [
            self._event(
                "input_audio_buffer.speech_started",
                item_id=item.item_id,
                audio_start_ms=round(start_s * 1000),
            )
        ]

    def _new_item(self, start_s: float) -> _Item:
        self._items += 1
        return _Item(f"item_{self.session_id}_{self._items}", start_s)

    def _committed(self, item: _Item) -> str:
        event = self._event(
            "input_audio_buffer.committed",
            item_id=item.item_id,
            previous_item_id=self._previous_item,
        )
        self._previous_item = item.item_id
        return event

    def _error(
        self, message: str, code: str, param: str | None, kind: str = "invalid_request_error"
    ) -> str:
        error = {"type": kind, "code": code, "message": message, "param": param, "event_id": None}
        return self._event("error", error=error)

    def _event(self, kind: str, **body: Any) -> str:
        self._events += 1
        return json.dumps(
            {"type": kind, "event_id": f"event_{self.session_id}_{self._events}", **body},
            ensure_ascii=False,
        )


def _strict(decoder: msgspec.json.Decoder[Any], text: str) -> Any:
    try:
        return decoder.decode(text)
    except msgspec.ValidationError as exc:
        unknown = "unknown field" in str(exc)
        raise RealtimeError(
            str(exc), code="unknown_parameter" if unknown else "invalid_value"
        ) from None
    except (msgspec.DecodeError, RecursionError):
        raise RealtimeError("the event is not valid JSON", code="invalid_json") from None
