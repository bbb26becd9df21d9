"""Addresses: a listen address as a client on this machine can use it, and this process's
name among the parts."""

from __future__ import annotations

import ipaddress
import os
import socket


def url_host(host: str) -> str:
    """``0.0.0.0`` and ``::`` become loopback; IPv6 literals get brackets."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    """Whether a listen address reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def process_name(kind: str | None = None) -> str:
    """``host-pid``, or ``kind-host-pid``: this process among the parts (consumer names,
    heartbeat ids, channels); unique while it lives, readable in ``status``."""
    name = f"{socket.gethostname()}-{os.getpid()}"
    return f"{kind}-{name}" if kind else name
