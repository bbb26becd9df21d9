"""OpenAI's audio API on the ingest port: ``POST /v1/audio/transcriptions`` and
``POST /v1/audio/translations`` (``GET /v1/models`` is answered by the server's GET side,
from :func:`models_body`). A Starlette app (multipart parsed by
python-multipart); the recording is decoded here, and transcribed by the transcriber workers
through Redis (:mod:`ingest.upload_jobs`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import BinaryIO

import msgspec
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest import logger
from ingest.auth import bearer_token, host_allowed, verify_token
from ingest.openai_formats import (
    FileTranscript,
    assemble,
    render,
    text_delta_event,
    text_done_event,
)
from ingest.openai_request import AudioRequest, OpenAIError, invalid, parse_audio_form
from ingest.options import AuthOptions, UploadOptions
from ingest.upload_audio import CutWindow, UndecodableUpload, UploadTooLong, upload_windows
from ingest.upload_jobs import ClientGone, QueueFull, UploadQueue, UploadTimedOut
from ingest.upload_slots import UploadSlot, UploadSlots
from shared.audio import PIPELINE_SAMPLE_RATE
from shared.errors import ProtocolError
from shared.file_jobs import FileTask, FileWindowResult

MODELS_PATH = "/v1/models"
NOT_READY_RETRY_S = 5
"""The ``Retry-After`` of a 503 while no transcriber is ready (a model loads in seconds)."""
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class AudioApiOptions:
    model_name: str
    english_only: bool
    auth: AuthOptions | None
    allowed_hosts: tuple[str, ...]


def models_body(model_name: str) -> bytes:
    """``GET /v1/models``: the one model this deployment serves (any ``model`` a request
    names is served by it)."""
    model = {"id": model_name, "object": "model", "created": 0, "owned_by": "streamscribe"}
    return _ENCODER.encode({"object": "list", "data": [model]})


BODY_IDLE_S = 30.0
"""A request body that sends nothing for this long is dropped (408)."""
BODY_GRACE_S = 10.0
MIN_BODY_BYTES_PER_S = 1024
"""After its first 10 s a body must have come at 1 KiB/s on average, or it is dropped (408):
a byte a second kept uploads open for ever. 1 KiB/s is a sixteenth of a 128 kbit/s mobile
uplink: a real client is far above it, and the cap of 100 MiB then still has 28 hours."""


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


def _capped(app: ASGIApp, max_bytes: int) -> ASGIApp:
    """Request bodies stop at ``max_bytes`` (the endpoint's read raises :class:`_TooLarge`)
    and must keep coming (:class:`_TooSlow`: an idle or a trickling body).
    Each response closes its connection: the front door sorts connections by their first
    request, so a client's next request (``GET /v1/models``...) must come on a new one."""

    async def capped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        seen = 0
        started = time.monotonic()
        body_done = False

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        async def counting() -> Message:
            nonlocal seen, body_done
            if body_done:  # only a disconnect can come now
                return await receive()
            try:
                async with asyncio.timeout(BODY_IDLE_S):
                    message = await receive()
            except TimeoutError:
                raise _TooSlow from None
            if message["type"] != "http.request":
                return message
            seen += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
            if seen > max_bytes:
                raise _TooLarge
            elapsed = time.monotonic() - started
            if not body_done and elapsed > BODY_GRACE_S and seen < MIN_BODY_BYTES_PER_S * elapsed:
                raise _TooSlow
            return message

        await app(scope, counting, closing)

    return capped


def audio_app(
    options: AudioApiOptions,
    queue: UploadQueue,
    *,
    readiness: Callable[[], str | None],
    on_upload: Callable[[str, float], None] = lambda outcome, seconds: None,
) -> ASGIApp:
    """``readiness``: why an upload would not be transcribed now (None: it would);
    ``on_upload``: each upload's outcome and its seconds of audio, for the metrics."""
    limits = queue.options
    slots = UploadSlots(limits.max_concurrent, limits.max_concurrent_per_client)

    def _errors(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                if not host_allowed(request.headers.get("host"), options.allowed_hosts):
                    raise OpenAIError(HTTPStatus.MISDIRECTED_REQUEST, "unknown host")
                _authorize(request, options.auth)
                return await handler(request)
            except OpenAIError as exc:
                on_upload(exc.code or exc.kind, 0.0)
                return _error_response(exc)
            except _TooLarge:
                on_upload("too_large", 0.0)
                return _error_response(_too_large(limits.max_upload_bytes))
            except _TooSlow:
                on_upload("too_slow", 0.0)
                return _error_response(_too_slow())
            except ClientGone:
                on_upload("client_gone", 0.0)
                return Response(status_code=499)  # nobody reads it

        return guarded

    async def transcriptions(request: Request) -> Response:
        return await _audio(request, FileTask.TRANSCRIBE)

    async def translations(request: Request) -> Response:
        return await _audio(request, FileTask.TRANSLATE)

    async def _audio(request: Request, task: FileTask) -> Response:
        _check_head(request, limits)
        slot = slots.take(_client_of(request, options.auth))
        try:
            form = await _read_form(request)
        except BaseException:
            slot.release()
            raise
        upload = _Upload(form, slot)
        streaming = False
        try:
            file, asked = _asked(form, task, english_only=options.english_only)
            _ready(readiness())
            windows = _decoded_windows(upload, file, limits)
            results = _in_openai_terms(
                queue.transcribe(windows, asked.upload, gone=request.is_disconnected)
            )
            if asked.stream:
                first = await _first(results)  # a full queue or bad audio: a status, no stream
                on_upload("ok", upload.seconds)
                streaming = True  # the stream closes the upload however it ends
                return StreamingResponse(
                    _events(first, results, task, upload),
                    media_type="text/event-stream",
                    background=BackgroundTask(upload.close),
                )
            transcript = await _collect(results, task, upload)
        finally:
            if not streaming:
                await upload.close()
        on_upload("ok", transcript.duration_s)
        body, content_type = render(
            transcript, asked.response_format, words=asked.words, segments=asked.segments
        )
        return Response(body, media_type=content_type)

    app = Starlette(
        routes=[
            Route("/v1/audio/transcriptions", _errors(transcriptions), methods=["POST"]),
            Route("/v1/audio/translations", _errors(translations), methods=["POST"]),
        ]
    )
    return _capped(app, limits.max_upload_bytes)


def _check_head(request: Request, limits: UploadOptions) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_upload_bytes:
        raise _too_large(limits.max_upload_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise invalid("the body must be multipart/form-data", None, "invalid_content_type")


def _asked(form: FormData, task: FileTask, *, english_only: bool) -> tuple[BinaryIO, AudioRequest]:
    """The uploaded file and the form's fields, checked."""
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise invalid("you must provide a file", "file", "missing_required_parameter")
    fields = {
        name: [v for v in form.getlist(name) if isinstance(v, str)]
        for name in form
        if name != "file"
    }
    return file.file, parse_audio_form(fields, task=task, english_only=english_only)


def _ready(why_not: str | None) -> None:
    if why_not is not None:
        raise OpenAIError(
            HTTPStatus.SERVICE_UNAVAILABLE, f"cannot transcribe now: {why_not}",
            kind="server_error", code="unavailable", retry_after_s=NOT_READY_RETRY_S,
        )  # fmt: skip


class _Upload:
    """One upload in progress: its form (and so its spooled file), its slot, and the audio
    decoded so far; closed once, by the response that finishes it."""

    def __init__(self, form: FormData, slot: UploadSlot) -> None:
        self._form = form
        self._slot = slot
        self.seconds = 0.0
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._slot.release()
        await self._form.close()


async def _read_form(request: Request) -> FormData:
    """The multipart body, every way it can be malformed answered as OpenAI answers (400 in
    its JSON shape), never as a server error."""
    try:
        return await request.form(max_files=1, max_fields=32, max_part_size=64 * 1024)
    except (HTTPException, MultiPartException, ValueError) as exc:
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        detail = detail if isinstance(detail, str) and detail else type(exc).__name__
        raise invalid(
            f"the multipart body could not be read: {detail[:200]}", None, "invalid_multipart"
        ) from None


async def _decoded_windows(
    upload: _Upload, file: BinaryIO, limits: UploadOptions
) -> AsyncIterator[CutWindow]:
    """The upload's windows, decoded one at a time in a worker thread as they are asked for
    (:func:`ingest.upload_audio.upload_windows`); a recording that cannot be decoded or runs
    too long is OpenAI's 400."""
    cuts = upload_windows(
        file, max_duration_s=limits.max_duration_s, max_window_s=limits.max_window_s
    )
    try:
        while True:
            try:
                cut = await asyncio.to_thread(next, cuts, None)
            except UploadTooLong as exc:
                raise invalid(str(exc), "file", "invalid_value") from None
            except UndecodableUpload as exc:
                raise invalid(str(exc), "file", "invalid_file_format") from None
            if cut is None:
                return
            upload.seconds = cut.window.end / PIPELINE_SAMPLE_RATE
            yield cut
    finally:
        await asyncio.to_thread(cuts.close)


async def _first(results: AsyncIterator[FileWindowResult]) -> FileWindowResult | None:
    try:
        return await anext(aiter(results), None)
    except BaseException:
        await results.aclose()  # type: ignore[attr-defined]
        raise


async def _in_openai_terms(
    results: AsyncIterator[FileWindowResult],
) -> AsyncIterator[FileWindowResult]:
    """The queue's refusals as OpenAI's errors."""
    try:
        async for result in results:
            _check(result)
            yield result
    except QueueFull as exc:
        raise OpenAIError(
            HTTPStatus.TOO_MANY_REQUESTS, "the transcription queue is full; retry later",
            kind="requests", code="rate_limit_exceeded", retry_after_s=exc.retry_after_s,
        ) from None  # fmt: skip
    except UploadTimedOut as exc:
        raise OpenAIError(
            HTTPStatus.GATEWAY_TIMEOUT, str(exc), kind="server_error", code="timeout"
        ) from None
    finally:
        await results.aclose()  # type: ignore[attr-defined]


async def _collect(
    results: AsyncIterator[FileWindowResult], task: FileTask, upload: _Upload
) -> FileTranscript:
    collected = [result async for result in results]
    return assemble(task.value, upload.seconds, collected)


async def _events(
    first: FileWindowResult | None,
    rest: AsyncIterator[FileWindowResult],
    task: FileTask,
    upload: _Upload,
) -> AsyncIterator[bytes]:
    """``transcript.text.delta`` per window as it is done, in order; then ``.done``. The
    upload is closed (its file, its slot) however the stream ends."""
    collected = []
    pending = [first] if first is not None else []
    try:
        while True:
            result = pending.pop() if pending else await anext(rest, None)
            if result is None:
                break
            collected.append(result)
            text = " ".join(s.text.strip() for s in result.segments if s.text.strip())
            if text:
                yield text_delta_event(text if len(collected) == 1 else " " + text)
        yield text_done_event(assemble(task.value, upload.seconds, collected))
    except OpenAIError as exc:  # the status is sent: the stream ends with the error
        logger.warning("streamed upload failed: %s", exc.message)
        yield b"event: error\ndata: " + exc.body() + b"\n\n"
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
        await upload.close()


def _check(result: FileWindowResult) -> None:
    if result.error:
        raise OpenAIError(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            f"window {result.window_index} could not be transcribed: {result.error}",
            kind="server_error",
            code="transcription_failed",
        )


def _authorize(request: Request, auth: AuthOptions | None) -> None:
    if auth is None:
        return
    try:
        verify_token(bearer_token(None, request.headers.get("authorization")), auth)
    except ProtocolError as exc:
        raise OpenAIError(HTTPStatus.UNAUTHORIZED, exc.message, code="invalid_api_key") from None


def _client_of(request: Request, auth: AuthOptions | None) -> str:
    """Who an upload counts against: its token's subject (checked already), else the address
    it came from (behind a proxy with tokens off: the proxy's)."""
    if auth is not None:
        token = bearer_token(None, request.headers.get("authorization"))
        return "token:" + verify_token(token, auth).subject
    return "address:" + (request.client.host if request.client else "")


def _too_large(limit: int) -> OpenAIError:
    return OpenAIError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"the request is larger than the {limit // 2**20} MiB allowed",
        param="file",
        code="file_too_large",
    )


def _too_slow() -> OpenAIError:
    return OpenAIError(
        HTTPStatus.REQUEST_TIMEOUT,
        f"the request body came too slowly (at least {MIN_BODY_BYTES_PER_S} bytes a second "
        f"after the first {BODY_GRACE_S:g} s, and never {BODY_IDLE_S:g} s without any)",
        code="request_timeout",
    )


def _error_response(error: OpenAIError) -> Response:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    return Response(
        error.body(), status_code=error.status, media_type="application/json", headers=headers
    )
