"""The browser page's files, read once from the package and served with safe headers."""

from __future__ import annotations

from http import HTTPStatus
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Response

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_SECURITY = [
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' blob: data:; "
        "media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
]


class StaticFiles:
    def __init__(self) -> None:
        folder = resources.files("ingest") / "static"
        self._files: dict[str, tuple[str, bytes]] = {}
        for entry in folder.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in _TYPES:
                self._files[entry.name] = (_TYPES[suffix], entry.read_bytes())

    def response(self, path: str) -> Response | None:
        """The response for ``/`` or ``/static/NAME``; None for any other path."""
        if path == "/":
            name = "index.html"
        elif path.startswith("/static/"):
            name = path.removeprefix("/static/")
        else:
            return None
        found = self._files.get(name)
        if found is None:
            return None
        content_type, body = found
        headers = Headers(
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *_SECURITY]
        )
        return Response(HTTPStatus.OK, "OK", headers, body)
