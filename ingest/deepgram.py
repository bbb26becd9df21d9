"""Deepgram's live transcription API (``GET /v1/listen``) as a face of the session, no I/O.

Clients written for Deepgram (its SDKs, pipecat's and LiveKit's Deepgram services) change only
their base URL. The query string is read as Deepgram documents it; the session's finals come
as ``Results`` with ``is_final`` (``speech_final`` unless the utterance was cut at the length
cap, ``from_finalize`` when the client's ``Finalize`` ended it), partials as interim
``Results``, ``SpeechStarted`` with an utterance's first result, ``UtteranceEnd`` after each
final, ``Metadata`` at the end.
``KeepAlive``, ``Finalize`` and ``CloseStream`` are the client's messages.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from ingest.faces import FaceInput
from ingest.protocol import (
    CLOSE_BAD_PARAMETER,
    CLOSE_UNSUPPORTED,
    MAX_TEXT_CHARACTERS,
    ClientCommand,
    StreamParams,
    parse_stream_params,
    vocabulary_of,
)
from shared.audio import Encoding
from shared.client_messages import Error, SessionEnd, Transcript, WordTimes, decode
from shared.errors import ProtocolError

LISTEN_PATH = "/v1/listen"
IDLE_TIMEOUT_S = 10.0
"""Deepgram closes a stream that sent neither audio nor a message this long (NET-0001)."""
CLOSE_DATA_ERROR = 1008
CLOSE_NET_ERROR = 1011

_ENCODINGS = {"linear16": Encoding.PCM_S16LE, "mulaw": Encoding.MULAW, "alaw": Encoding.ALAW}
_FLAGS = frozenset(
    {
        "interim_results",
        "vad_events",
        "punctuate",
        "smart_format",
        "numerals",
        "profanity_filter",
        "filler_words",
        "no_delay",
        "dictation",
        "measurements",
        "mip_opt_out",
        "diarize",
        "multichannel",
        "detect_entities",
    }
)
"""Flags read as true/false; those other than the first two are accepted and change nothing
(the transcripts are Whisper's own punctuated text), except ``diarize``, ``multichannel`` and
``detect_entities``, which must be false."""
_UNSUPPORTED = frozenset(
    {"redact", "search", "replace", "callback", "callback_method", "language_hint"}
)
"""Deepgram's, refused by name: what they ask for is not done here."""
_ACCEPTED = frozenset({"tag", "extra", "version", "model", "endpointing"})
_REPEATABLE = frozenset({"keyterm", "keywords", "tag", "extra"})
_OURS = frozenset({"room", "name", "token"})
"""streamscribe's own: speak into a room under a name; a token for clients without headers."""
_KNOWN = (
    _FLAGS
    | _ACCEPTED
    | _REPEATABLE
    | _OURS
    | {"encoding", "sample_rate", "channels", "language", "utterance_end_ms"}
)


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """What a Deepgram client asked for, beyond the session's own parameters."""

    interim_results: bool = False
    vad_events: bool = False
    utterance_end_ms: int | None = None
    model: str = "nova-3"
    """Reported back in ``Metadata`` and every result; the server's model transcribes."""
    keyterms: str = ""
    """``keyterm`` and ``keywords`` as the session's vocabulary."""


def _refused(name: str, problem: str) -> ProtocolError:
    return ProtocolError("invalid_parameter", f"{name}: {problem}", CLOSE_BAD_PARAMETER)


def parse_listen_request(
    query: Mapping[str, Sequence[str]], *, english_only: bool
) -> tuple[StreamParams, ListenOptions]:
    """The session's parameters and Deepgram's options from ``/v1/listen``'s query string;
    a :class:`ProtocolError` naming the first bad parameter."""
    one: dict[str, str] = {}
    for name, values in query.items():
        if name in _UNSUPPORTED:
            raise _refused(name, "not supported by this server")
        if name not in _KNOWN:
            raise _refused(name, "unknown parameter")
        if len(values) != 1 and name not in _REPEATABLE:
            raise _refused(name, "given more than once")
        one[name] = values[-1]
    flags = {name: _flag(name, one[name]) for name in _FLAGS & one.keys()}
    for name in ("diarize", "multichannel", "detect_entities"):
        if flags.get(name):
            raise _refused(name, "only false is supported (one speaker per stream: use rooms)")
    if one.get("channels", "1") != "1":
        raise _refused("channels", "only 1 (mono) is supported")
    raw_encoding = one.get("encoding", "linear16")
    if raw_encoding not in _ENCODINGS:
        raise _refused("encoding", f"must be one of {', '.join(_ENCODINGS)}")
    v1 = {"encoding": _ENCODINGS[raw_encoding].value, "language": _language(one)}
    v1["partials"] = str(flags.get("interim_results", False) or flags.get("vad_events", False))
    for name in ("sample_rate", "room", "name", "token"):
        if name in one:
            v1[name] = one[name]
    terms = [*query.get("keyterm", ()), *query.get("keywords", ())]
    keyterms = vocabulary_of([t.rsplit(":", 1)[0] for t in terms], parameter="keyterm")
    params = parse_stream_params({k: [v] for k, v in v1.items()}, english_only=english_only)
    params = dataclasses.replace(params, vocabulary=keyterms)
    return params, ListenOptions(
        interim_results=flags.get("interim_results", False),
        vad_events=flags.get("vad_events", False),
        utterance_end_ms=_utterance_end(one.get("utterance_end_ms")),
        model=one.get("model", "nova-3")[:64],
        keyterms=keyterms,
    )


def _flag(name: str, raw: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise _refused(name, "must be true or false")
    return raw.lower() == "true"


def _language(one: Mapping[str, str]) -> str:
    """Deepgram's tags (``en-US``, ``multi``) as the session's: the base language, or auto."""
    raw = one.get("language", "en")
    if raw == "multi":
        return "auto"
    return raw.split("-", 1)[0].lower() if raw else "en"


def _utterance_end(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or not 1000 <= int(raw) <= 5000:
        raise _refused("utterance_end_ms", "must be an integer from 1000 to 5000")
    return int(raw)


def error_body(error: ProtocolError, request_id: str) -> bytes:
    """The JSON Deepgram answers a refused handshake with."""
    code = {4001: "INVALID_AUTH", 4003: "INSUFFICIENT_PERMISSIONS"}.get(error.close_code)
    body = {"err_code": code or "Bad Request", "err_msg": error.message, "request_id": request_id}
    return json.dumps(body).encode()


def http_status(error: ProtocolError) -> int:
    return {4001: 401, 4003: 403, 1013: 503}.get(error.close_code, 400)


class _ClientMessage(msgspec.Struct, frozen=True):
    type: str


_CLIENT = msgspec.json.Decoder(_ClientMessage)
_COMMANDS = {
    "KeepAlive": ClientCommand.KEEPALIVE,
    "Finalize": ClientCommand.FINALIZE,
    "CloseStream": ClientCommand.CLOSE,
}
_CHANNEL = [0, 1]
"""Deepgram's ``channel``/``channel_index``: channel 0 of 1."""


class DeepgramFace:
    """One Deepgram client's view of its session."""

    name = "deepgram"
    resumable = False
    idle_timeout_s: float | None = IDLE_TIMEOUT_S

    def __init__(
        self, options: ListenOptions, *, request_id: str, created: float | None = None
    ) -> None:
        self.options = options
        self.request_id = request_id
        self._created = time.time() if created is None else created
        self._model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"streamscribe:{options.model}"))
        self._started: set[str] = set()
        """Utterances whose SpeechStarted was sent."""
        self._last_error = ""

    def read(self, text: str) -> FaceInput:
        return FaceInput(command=self.command(text))

    def command(self, text: str) -> ClientCommand:
        if len(text) > MAX_TEXT_CHARACTERS:
            raise _bad_message(f"longer than {MAX_TEXT_CHARACTERS} characters")
        try:
            kind = _CLIENT.decode(text).type
        except (msgspec.DecodeError, RecursionError):
            raise _bad_message('expected {"type": "KeepAlive|Finalize|CloseStream"}') from None
        command = _COMMANDS.get(kind)
        if command is None:
            raise _bad_message(f"unknown message type {kind!r}")
        return command

    def frames(self, message: str) -> list[str]:
        decoded = decode(message)
        if isinstance(decoded, Transcript):
            return self._transcript(decoded)
        if isinstance(decoded, SessionEnd):
            return [self._metadata(decoded.duration_s)]
        if isinstance(decoded, Error):
            self._last_error = decoded.message
            body = {"type": "Error", "variant": decoded.code, "description": decoded.message}
            return [json.dumps(body)]
        return []  # greetings, turns, rooms and translations have no Deepgram form

    def close(self, code: int, reason: str) -> tuple[int, str]:
        if code == 1007:
            return CLOSE_DATA_ERROR, "DATA-0000"
        if code == 4008 and self._last_error.startswith("nothing received"):
            return CLOSE_NET_ERROR, "NET-0001"
        return code, reason

    def _transcript(self, message: Transcript) -> list[str]:
        out: list[str] = []
        first = message.utterance_id not in self._started
        if first:
            self._started.add(message.utterance_id)
            if self.options.vad_events:
                out.append(
                    json.dumps(
                        {"type": "SpeechStarted", "channel": _CHANNEL, "timestamp": message.start}
                    )
                )
        if not message.is_final:
            if self.options.interim_results:
                out.append(self._results(message, is_final=False))
            return out
        self._started.discard(message.utterance_id)
        out.append(self._results(message, is_final=True))
        if self.options.utterance_end_ms is not None:
            words = message.words or ()
            last = words[-1].end if words else message.end
            out.append(
                json.dumps({"type": "UtteranceEnd", "channel": _CHANNEL, "last_word_end": last})
            )
        return out

    def _results(self, message: Transcript, *, is_final: bool) -> str:
        words = message.words or ()
        ended_by = message.ended_by or ""
        confidence = sum(w.probability for w in words) / len(words) if words else 0.0
        body = {
            "type": "Results",
            "channel_index": _CHANNEL,
            "duration": round(message.end - message.start, 3),
            "start": message.start,
            "is_final": is_final,
            # the speaker paused (or the stream ended), not the 15 s cap cutting speech short
            "speech_final": is_final and ended_by != "max_length",
            "from_finalize": ended_by == "finalize",
            "channel": {
                "alternatives": [
                    {
                        "transcript": message.text,
                        "confidence": round(confidence, 4),
                        "words": [_word(w) for w in words],
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": self.options.model, "version": "1", "arch": "whisper"},
                "model_uuid": self._model_uuid,
            },
        }
        return json.dumps(body, ensure_ascii=False)

    def _metadata(self, duration_s: float) -> str:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._created))
        model = {"name": self.options.model, "version": "1", "arch": "whisper"}
        body = {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": "",
            "created": f"{created}.000Z",
            "duration": duration_s,
            "channels": 1,
            "models": [self._model_uuid],
            "model_info": {self._model_uuid: model},
        }
        return json.dumps(body)


def _bad_message(problem: str) -> ProtocolError:
    return ProtocolError("invalid_message", problem, CLOSE_UNSUPPORTED)


def _word(word: WordTimes) -> dict[str, object]:
    punctuated = word.word.strip()
    bare = "".join(c for c in punctuated if c.isalnum() or c in "'-").lower()
    return {
        "word": bare or punctuated.lower(),
        "start": word.start,
        "end": word.end,
        "confidence": round(word.probability, 4),
        "punctuated_word": punctuated,
    }
