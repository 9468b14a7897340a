"""thumbnailer: renders screen previews (a stand-in for a vendor's imaging library).

Like many C-extension libraries, it leaks: every render allocates a frame buffer of
width x height x 4 bytes with C's malloc and never frees it. The leak is invisible to
Python's garbage collector and to tracemalloc; only the process's RSS shows it. The
memory comes back only when the process exits, which is what Celery's
--max-tasks-per-child and --max-memory-per-child rely on.

A frame larger than the memory a worker may use is never rendered: the process is
killed on the spot, as the kernel's OOM killer would kill it (a stand-in, see
MEMORY_LIMIT_BYTES). An input that big kills every process that tries it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.memset.restype = ctypes.c_void_p
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]

BYTES_PER_PIXEL = 4

# The memory a worker's container may use (k8s/60-worker.yaml: limits.memory 768Mi). A
# frame larger than that can never fit: the kernel's OOM killer would SIGKILL the process
# while the library fills it. This stand-in does the same at once, without touching the
# memory: SIGKILL, no exception, no cleanup, nothing Python can catch.
MEMORY_LIMIT_BYTES = 768 * 1024 * 1024


def frame_bytes(width: int, height: int) -> int:
    """What one render of this size leaks."""
    return width * height * BYTES_PER_PIXEL


def render(layout: str, width: int = 360, height: int = 360) -> str:
    """Render `layout` into a preview; returns the preview's fingerprint."""
    size = frame_bytes(width, height)
    if size > MEMORY_LIMIT_BYTES:
        _killed_out_of_memory(size)
    frame = _libc.malloc(size)
    if not frame:
        raise MemoryError(f"thumbnailer could not allocate a {width}x{height} frame")
    _libc.memset(frame, 0x2A, size)  # touch every page, so the leak is resident
    # The bug: the frame is never passed to free().
    return hashlib.sha256(f"{layout}:{width}x{height}".encode()).hexdigest()[:16]


def _killed_out_of_memory(size: int) -> None:
    """What the kernel does to a process past its memory limit, and the line it logs (dmesg's)."""
    mib = 1024 * 1024
    limit = MEMORY_LIMIT_BYTES // mib
    line = f"Out of memory: Killed process {os.getpid()}: a {size // mib} MiB frame, over the {limit} MiB limit\n"
    os.write(2, line.encode())  # straight to the process's stderr, as no logging setting can hide it
    os.kill(os.getpid(), signal.SIGKILL)
