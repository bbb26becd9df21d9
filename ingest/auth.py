"""Access tokens (signed, expiring JWTs) and the browser-origin check, without I/O.

A token names the rooms it grants (``*``: any) and whether its bearer may speak or only
listen. Failures are :class:`ProtocolError` with the protocol's close codes: 4001 for a
missing, invalid or expired token, 4003 for one that does not grant what was asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

from ingest.options import AuthOptions
from shared.errors import ProtocolError

CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN = 4003
ISSUER = "streamscribe"
ALGORITHM = "HS256"
ANY_ROOM = "*"


@dataclass(frozen=True, slots=True)
class Grant:
    subject: str
    rooms: frozenset[str]
    may_speak: bool

    def allows_room(self, room: str) -> bool:
        return ANY_ROOM in self.rooms or room in self.rooms


def mint_token(
    options: AuthOptions,
    *,
    rooms: Iterable[str],
    may_speak: bool,
    ttl_s: float,
    subject: str = "",
    now: float | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "rooms": sorted(set(rooms)),
        "speak": may_speak,
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    return jwt.encode(claims, options.secret, algorithm=ALGORITHM)


def verify_token(token: str | None, options: AuthOptions) -> Grant:
    if not token:
        raise _unauthorized("an access token is required (token= or Authorization: Bearer)")
    try:
        claims = jwt.decode(
            token,
            options.secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            leeway=options.leeway_s,
            options={"require": ["exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("the access token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise _unauthorized(f"the access token is not valid: {exc}") from None
    rooms = claims.get("rooms", [])
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise _unauthorized("the access token's rooms are malformed")
    speak = claims.get("speak", False)
    if not isinstance(speak, bool):
        raise _unauthorized("the access token's speak claim is not true or false")
    return Grant(str(claims.get("sub", "")), frozenset(rooms), speak)


def check_room(grant: Grant, room: str | None) -> None:
    if room is not None and not grant.allows_room(room):
        raise ProtocolError(
            "forbidden", f"the access token does not grant room {room!r}", CLOSE_FORBIDDEN
        )


def listen_only() -> ProtocolError:
    return ProtocolError("forbidden", "the access token only allows listening", CLOSE_FORBIDDEN)


def bearer_token(query_token: str | None, authorization: str | None) -> str | None:
    if query_token:
        return query_token
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() in ("bearer", "token"):  # "Token": Deepgram's clients say so
        return credentials.strip() or None
    return None


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """Clients that send no Origin (not browsers) pass; a browser page must come from this
    server itself or from an allowed origin."""
    if origin is None:
        return True
    allowed = set(allowed)
    if ANY_ROOM in allowed or origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether ``Host`` (a name, with or without a port) is one this server answers to: a
    page on a rebinding name (``evil.example`` resolving to 127.0.0.1) names its own."""
    allowed = set(allowed)
    if ANY_ROOM in allowed:
        return True
    if not host:
        return False
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return False
    return name is not None and name.lower() in allowed


def _unauthorized(message: str) -> ProtocolError:
    return ProtocolError("unauthorized", message, CLOSE_UNAUTHORIZED)
