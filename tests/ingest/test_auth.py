"""Access tokens and the origin check, without I/O."""

from __future__ import annotations

import time

import jwt
import pytest

from ingest.auth import (
    bearer_token,
    check_room,
    host_allowed,
    mint_token,
    origin_allowed,
    verify_token,
)
from ingest.options import AuthOptions
from ingest.protocol import parse_stream_params
from shared.addresses import is_loopback
from shared.errors import ProtocolError

OPTIONS = AuthOptions("k" * 40)


def refused(token: str | None) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        verify_token(token, OPTIONS)
    return caught.value


def test_a_minted_token_grants_its_rooms_and_role() -> None:
    grant = verify_token(
        mint_token(OPTIONS, rooms=["42"], may_speak=False, ttl_s=60, subject="ana"), OPTIONS
    )
    assert grant.subject == "ana" and not grant.may_speak
    assert grant.allows_room("42") and not grant.allows_room("43")
    check_room(grant, "42")
    check_room(grant, None)  # a private session needs no room grant
    with pytest.raises(ProtocolError) as caught:
        check_room(grant, "43")
    assert caught.value.close_code == 4003
    anywhere = verify_token(mint_token(OPTIONS, rooms=["*"], may_speak=True, ttl_s=60), OPTIONS)
    assert anywhere.allows_room("anything") and anywhere.may_speak


def test_missing_expired_forged_and_garbage_tokens_are_4001() -> None:
    expired = mint_token(OPTIONS, rooms=["42"], may_speak=True, ttl_s=60, now=time.time() - 3600)
    forged = mint_token(AuthOptions("z" * 40), rooms=["42"], may_speak=True, ttl_s=60)
    unsigned = jwt.encode({"iss": "streamscribe", "exp": time.time() + 60}, None, algorithm="none")
    for token, words in [
        (None, "required"),
        ("", "required"),
        (expired, "expired"),
        (forged, "not valid"),
        (unsigned, "not valid"),
        ("not.a.jwt", "not valid"),
    ]:
        error = refused(token)
        assert error.close_code == 4001 and words in error.message, (token, error.message)


def test_tokens_come_from_the_query_or_a_bearer_header() -> None:
    assert bearer_token("q", "Bearer h") == "q"
    assert bearer_token(None, "Bearer h") == "h"
    assert bearer_token(None, "bearer  h ") == "h"
    assert bearer_token(None, "Basic abc") is None
    assert bearer_token(None, None) is None


def test_only_this_servers_page_and_allowed_origins_may_open_streams() -> None:
    assert origin_allowed(None, "live.example.com", [])  # not a browser
    assert origin_allowed("https://live.example.com", "live.example.com", [])
    assert not origin_allowed("https://evil.example", "live.example.com", [])
    assert origin_allowed("https://app.example", "live.example.com", ["https://app.example"])
    assert origin_allowed("https://any.example", "live.example.com", ["*"])


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.4", "example.com"))


def test_secrets_are_never_shown() -> None:
    assert "k" * 40 not in repr(OPTIONS)
    params = parse_stream_params({"token": ["secret-token"]}, english_only=True)
    assert params.token == "secret-token" and "secret-token" not in repr(params)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuthOptions("short")


def test_a_speak_claim_that_is_not_a_boolean_is_refused() -> None:
    for speak in ("false", "true", 1, None):
        claims = {"iss": "streamscribe", "iat": time.time(), "exp": time.time() + 60}
        token = jwt.encode({**claims, "rooms": ["42"], "speak": speak}, OPTIONS.secret, "HS256")
        error = refused(token)
        assert error.close_code == 4001 and "speak" in error.message, speak


def test_only_the_hosts_this_server_answers_to_pass() -> None:
    loopback = ("localhost", "127.0.0.1", "::1")
    for host in ("127.0.0.1:8080", "localhost", "LOCALHOST:80", "[::1]:8080"):
        assert host_allowed(host, loopback), host
    for host in ("evil.example:8080", "127.0.0.1.evil.example", "", None, "[bad", "a b"):
        assert not host_allowed(host, loopback), host
    assert host_allowed("evil.example", ("*",))
    assert host_allowed("speech.example.com:443", ("speech.example.com",))
