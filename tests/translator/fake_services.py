"""Local HTTP servers speaking the Bedrock Runtime Converse and OpenAI chat wire formats.

Each answers from a script of behaviours (then "ok"), records every request, and rejects a
request whose shape is wrong with the service's own validation error, so a client bug shows.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote


def translated(text: str) -> str:
    return f"TRANSLATED[{text}]"


class FakeService:
    def __init__(self, kind: str, script: list[str] | None = None) -> None:
        self.kind = kind  # "bedrock" or "openai"
        self.script: deque[str] = deque(script or [])
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeService:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_behaviour(self) -> str:
        with self._lock:
            return self.script.popleft() if self.script else "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                request = {"path": unquote(self.path), "headers": dict(self.headers), "raw": raw}
                with service._lock:
                    service.requests.append(request)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return self._error(400, "ValidationException", "body is not JSON")
                request["body"] = body
                problem = (
                    _bedrock_problem(request)
                    if service.kind == "bedrock"
                    else _openai_problem(request)
                )
                if problem:
                    return self._error(400, "ValidationException", problem)
                behaviour = service.next_behaviour()
                if behaviour.startswith("slow:"):
                    time.sleep(float(behaviour.split(":", 1)[1]))
                    behaviour = "ok"
                if behaviour == "throttle":
                    return self._error(429, "ThrottlingException", "Too many requests, please wait")
                if behaviour == "unavailable":
                    return self._error(503, "ServiceUnavailableException", "Service unavailable")
                if behaviour == "error":
                    return self._error(500, "InternalServerException", "internal failure")
                if behaviour == "malformed":
                    return self._send(200, b'{"output": {"message": ', "application/json")
                text = _user_text(service.kind, body)
                reply = (
                    {
                        "output": {
                            "message": {
                                "role": "assistant",
                                "content": [{"text": translated(text)}],
                            }
                        },
                        "stopReason": "end_turn",
                        "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20},
                        "metrics": {"latencyMs": 5},
                    }
                    if service.kind == "bedrock"
                    else {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": translated(text)},
                            }
                        ],
                    }
                )
                self._send(200, json.dumps(reply).encode(), "application/json")

            def _error(self, status: int, code: str, message: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/")
                body = json.dumps({"message": message, "error": {"message": message}}).encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _bedrock_problem(request: dict[str, Any]) -> str:
    path, headers, body = request["path"], request["headers"], request["body"]
    if not (path.startswith("/model/") and path.endswith("/converse")):
        return f"unexpected path {path}"
    if not headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 Credential="):
        return "request is not SigV4-signed"
    if "X-Amz-Date" not in headers:
        return "X-Amz-Date missing"
    messages = body.get("messages")
    if not (isinstance(messages, list) and messages and messages[0].get("role") == "user"):
        return "messages must start with a user message"
    if not all("text" in c for c in messages[0].get("content", [])):
        return "content blocks must be text"
    if not isinstance(body.get("system"), list):
        return "system prompt missing"
    return ""


def _openai_problem(request: dict[str, Any]) -> str:
    body = request["body"]
    if request["path"] != "/v1/chat/completions":
        return f"unexpected path {request['path']}"
    roles = [m.get("role") for m in body.get("messages", [])]
    if roles != ["system", "user"] or not body.get("model"):
        return "expected a model and system + user messages"
    return ""


def _user_text(kind: str, body: dict[str, Any]) -> str:
    if kind == "bedrock":
        return " ".join(c["text"] for c in body["messages"][0]["content"])
    return str(body["messages"][1]["content"])
