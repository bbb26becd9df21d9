"""OpenAI's audio API on the ingest port: ``POST /v1/audio/transcriptions`` and
``POST /v1/audio/translations`` (``GET /v1/models`` is answered by the server's GET side,
from :func:`models_body`). A Starlette app (multipart parsed by
python-multipart); the recording is decoded here, and transcribed by the transcriber workers
through Redis (:mod:`ingest.upload_jobs`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import BinaryIO

import msgspec
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
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
from ingest.openai_request import OpenAIError, invalid, parse_audio_form
from ingest.options import AuthOptions, UploadOptions
from ingest.upload_audio import UndecodableUpload, Window, cut_windows, decode_upload
from ingest.upload_jobs import QueueFull, UploadQueue, UploadTimedOut
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


class _TooLarge(Exception):
    pass


def _capped(app: ASGIApp, max_bytes: int) -> ASGIApp:
    """Request bodies stop at ``max_bytes``: the endpoint's read raises :class:`_TooLarge`.
    Each response closes its connection: the front door sorts connections by their first
    request, so a client's next request (``GET /v1/models``...) must come on a new one."""

    async def capped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        seen = 0

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise _TooLarge
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

        return guarded

    async def transcriptions(request: Request) -> Response:
        return await _audio(request, FileTask.TRANSCRIBE)

    async def translations(request: Request) -> Response:
        return await _audio(request, FileTask.TRANSLATE)

    async def _audio(request: Request, task: FileTask) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_upload_bytes:
            raise _too_large(limits.max_upload_bytes)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise invalid("the body must be multipart/form-data", None, "invalid_content_type")
        async with request.form(max_files=1, max_fields=32, max_part_size=64 * 1024) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise invalid("you must provide a file", "file", "missing_required_parameter")
            fields = {
                name: [v for v in form.getlist(name) if isinstance(v, str)]
                for name in form
                if name != "file"
            }
            asked = parse_audio_form(fields, task=task, english_only=options.english_only)
            why_not = readiness()
            if why_not is not None:
                raise OpenAIError(
                    HTTPStatus.SERVICE_UNAVAILABLE, f"cannot transcribe now: {why_not}",
                    kind="server_error", code="unavailable", retry_after_s=NOT_READY_RETRY_S,
                )  # fmt: skip
            pcm, windows = await asyncio.to_thread(_prepare, upload.file, limits)
        seconds = len(pcm) / 32000
        try:
            results = queue.transcribe(pcm, windows, asked.upload)
            if asked.stream:
                first = await anext(aiter(results), None)  # a full queue is a 429, not a stream
                on_upload("ok", seconds)
                return StreamingResponse(
                    _events(first, results, task, seconds), media_type="text/event-stream"
                )
            transcript = await _collect(results, task, seconds)
        except QueueFull as exc:
            raise OpenAIError(
                HTTPStatus.TOO_MANY_REQUESTS, "the transcription queue is full; retry later",
                kind="requests", code="rate_limit_exceeded", retry_after_s=exc.retry_after_s,
            ) from exc  # fmt: skip
        except UploadTimedOut as exc:
            raise OpenAIError(
                HTTPStatus.GATEWAY_TIMEOUT, str(exc), kind="server_error", code="timeout"
            ) from exc
        on_upload("ok", seconds)
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


def _prepare(file: BinaryIO, limits: UploadOptions) -> tuple[bytes, list[Window]]:
    try:
        pcm = decode_upload(file, max_duration_s=limits.max_duration_s)
    except UndecodableUpload as exc:
        raise invalid(str(exc), "file", "invalid_file_format") from None
    return pcm, cut_windows(pcm, max_window_s=limits.max_window_s)


async def _collect(
    results: AsyncIterator[FileWindowResult], task: FileTask, seconds: float
) -> FileTranscript:
    collected = []
    async for result in results:
        _check(result)
        collected.append(result)
    return assemble(task.value, seconds, collected)


async def _events(
    first: FileWindowResult | None,
    rest: AsyncIterator[FileWindowResult],
    task: FileTask,
    seconds: float,
) -> AsyncIterator[bytes]:
    """``transcript.text.delta`` per window as it is done, in order; then ``.done``."""
    collected = []
    pending = [first] if first is not None else []
    try:
        while True:
            result = pending.pop() if pending else await anext(rest, None)
            if result is None:
                break
            _check(result)
            collected.append(result)
            text = " ".join(s.text.strip() for s in result.segments if s.text.strip())
            if text:
                yield text_delta_event(text if len(collected) == 1 else " " + text)
        yield text_done_event(assemble(task.value, seconds, collected))
    except OpenAIError as exc:  # the status is sent: the stream ends with the error
        logger.warning("streamed upload failed: %s", exc.message)
        yield b"event: error\ndata: " + exc.body() + b"\n\n"
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


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


def _too_large(limit: int) -> OpenAIError:
    return OpenAIError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"the request is larger than the {limit // 2**20} MiB allowed",
        param="file",
        code="file_too_large",
    )


def _error_response(error: OpenAIError) -> Response:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    return Response(
        error.body(), status_code=error.status, media_type="application/json", headers=headers
    )
