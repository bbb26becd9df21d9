"""Listen addresses as URL hosts (loopback ones: tests/ingest/test_auth.py) and the name of
this process among the parts."""

from __future__ import annotations

import os
import socket

import pytest

from shared.addresses import process_name, url_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "[::1]"),
        ("::1", "[::1]"),
        ("a.b", "a.b"),
    ],
)
def test_a_listen_address_as_a_url_host(host: str, expected: str) -> None:
    assert url_host(host) == expected


def test_a_process_is_named_by_host_and_pid_with_its_kind_first() -> None:
    plain = f"{socket.gethostname()}-{os.getpid()}"
    assert process_name() == plain
    assert process_name("translator") == f"translator-{plain}"
