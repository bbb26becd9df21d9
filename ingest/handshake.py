"""The GET side of the one port, answered before any WebSocket opens: health, readiness and
metrics, the page, OpenAI's model list, and each face's refusals at its handshake in the
error body its clients read (``process_request`` of websockets' server)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ingest import logger
from ingest.auth import host_allowed, origin_allowed
from ingest.deepgram import LISTEN_PATH, error_body, http_status, parse_listen_request
from ingest.languages import LANGUAGES_PATH, languages_body
from ingest.metrics import IngestMetrics
from ingest.openai_http import MODELS_PATH, models_body
from ingest.openai_request import OpenAIError
from ingest.options import IngestOptions
from ingest.realtime import REALTIME_PATH, parse_realtime_request
from ingest.static_files import StaticFiles
from shared.errors import ProtocolError
from shared.observability import Readiness, operations_reply

STREAM_PATH = "/v1/stream"
STREAM_PATHS = (STREAM_PATH, LISTEN_PATH, REALTIME_PATH)

Authorize = Callable[[Headers | None, str | None, str | None], bool]
"""Checks a request's token (headers, query token, room); whether it may speak."""


class Handshake:
    def __init__(
        self,
        options: IngestOptions,
        *,
        authorize: Authorize,
        registry: CollectorRegistry,
        readiness: Readiness,
        metrics: IngestMetrics,
    ) -> None:
        self.options = options
        self._authorize = authorize
        self._registry = registry
        self._readiness = readiness
        self._metrics = metrics
        self._static = StaticFiles()

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        """The response to send instead of opening a WebSocket (None: open it)."""
        response = self._answer(connection, request)
        if response is not None and request.method == "HEAD":
            return dataclasses.replace(response, body=b"")  # the headers say its length
        return response

    def _answer(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if request.method not in ("GET", "HEAD"):
            refused = connection.respond(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD\n")
            refused.headers["Allow"] = "GET, HEAD"
            return refused
        hosts, origins = request.headers.get_all("Host"), request.headers.get_all("Origin")
        if len(hosts) != 1 or len(origins) > 1:
            return connection.respond(HTTPStatus.BAD_REQUEST, "one Host and at most one Origin\n")
        host, origin = hosts[0], (origins[0] if origins else None)
        if not host_allowed(host, self.options.allowed_hosts):
            logger.info("refused a request for host %r", host[:100])
            return connection.respond(HTTPStatus.MISDIRECTED_REQUEST, "unknown host\n")
        reply = operations_reply(path, self._registry, self._readiness)
        if reply is not None:
            return _response(reply.status, reply.body, reply.content_type)
        if path == MODELS_PATH:
            return self._models(request)
        if path == LANGUAGES_PATH:
            options = self.options
            body = languages_body(
                options.model_name,
                english_only=options.english_only,
                whisper_translation=options.whisper_translation,
            )
            return _response(HTTPStatus.OK, body)
        if path in STREAM_PATHS:
            if not origin_allowed(origin, host, self.options.allowed_origins):
                logger.info("refused a stream from origin %s", origin)
                return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
            if path == REALTIME_PATH:
                return self._realtime_refusal(request)
            return self._listen_refusal(request) if path == LISTEN_PATH else None
        page = self._static.response(path)
        if page is not None:
            return page
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    def _models(self, request: Request) -> Response:
        """OpenAI's ``GET /v1/models`` (the audio API's other routes are POSTs, served by
        :mod:`ingest.openai_http`)."""
        try:
            self._authorize(request.headers, None, None)
        except ProtocolError as exc:
            return _openai_refusal(HTTPStatus.UNAUTHORIZED, exc)
        return _response(HTTPStatus.OK, models_body(self.options.model_name))

    def _realtime_refusal(self, request: Request) -> Response | None:
        """OpenAI's Realtime clients are refused at the handshake, with OpenAI's error body."""
        query = parse_qs(urlsplit(request.path).query, keep_blank_values=True)
        try:
            asked = parse_realtime_request(query)
            self._authorize(request.headers, asked.ours.get("token"), asked.ours.get("room"))
        except ProtocolError as exc:
            self._metrics.closes.labels(str(exc.close_code)).inc()
            return _openai_refusal(HTTPStatus(http_status(exc)), exc)
        return None

    def _listen_refusal(self, request: Request) -> Response | None:
        """Deepgram's clients are refused at the handshake, with its JSON error body."""
        query = parse_qs(urlsplit(request.path).query, keep_blank_values=True)
        try:
            params, _ = parse_listen_request(query, english_only=self.options.english_only)
            self._authorize(request.headers, params.token, params.room)
        except ProtocolError as exc:
            self._metrics.closes.labels(str(exc.close_code)).inc()
            body = error_body(exc, "s" + secrets.token_hex(8))
            return _response(HTTPStatus(http_status(exc)), body)
        return None


def _openai_refusal(status: HTTPStatus, error: ProtocolError) -> Response:
    code = "invalid_api_key" if status is HTTPStatus.UNAUTHORIZED else error.code
    return _response(status, OpenAIError(status, error.message, code=code).body())


def _response(status: HTTPStatus, body: bytes, content_type: str = "application/json") -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)
