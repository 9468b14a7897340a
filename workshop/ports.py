"""Free TCP ports on 127.0.0.1: never fixed ones, never 6379 or 5432.

A port handed out by free_port() is free when it is handed out; another program (or a
second `workshop check` on the same laptop) may take it before our child binds it.
`retry_port_clash` runs a start again, on fresh ports, when that happened.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
PORT_CLASH = "Address already in use"  # the words of uWSGI, nginx, Valkey and Python alike
ATTEMPTS = 5


def free_port() -> int:
    """A port the kernel just handed out; the caller binds it right away."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def retry_port_clash(start: Callable[[int], T], attempts: int = ATTEMPTS) -> T:
    """start(attempt) chooses its ports (fresh ones when attempt > 0) and starts a process;
    when the process could not bind because the port was taken in between, try again."""
    from workshop.processes import ServiceFailed

    for attempt in range(attempts):
        try:
            return start(attempt)
        except ServiceFailed as exc:
            if PORT_CLASH not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
