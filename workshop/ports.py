"""Free TCP ports on 127.0.0.1: never fixed ones, never 6379 or 5432."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the kernel just handed out; the caller binds it right away."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
