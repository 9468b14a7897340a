"""thumbnailer: renders screen previews (a stand-in for a vendor's imaging library).

Like many C-extension libraries, it leaks: every render allocates a frame buffer of
width x height x 4 bytes with C's malloc and never frees it. The leak is invisible to
Python's garbage collector and to tracemalloc; only the process's RSS shows it. The
memory comes back only when the process exits, which is what Celery's
--max-tasks-per-child and --max-memory-per-child rely on.
"""

from __future__ import annotations

import ctypes
import hashlib

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.memset.restype = ctypes.c_void_p
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]

BYTES_PER_PIXEL = 4


def frame_bytes(width: int, height: int) -> int:
    """What one render of this size leaks."""
    return width * height * BYTES_PER_PIXEL


def render(layout: str, width: int = 360, height: int = 360) -> str:
    """Render `layout` into a preview; returns the preview's fingerprint."""
    size = frame_bytes(width, height)
    frame = _libc.malloc(size)
    if not frame:
        raise MemoryError(f"thumbnailer could not allocate a {width}x{height} frame")
    _libc.memset(frame, 0x2A, size)  # touch every page, so the leak is resident
    # The bug: the frame is never passed to free().
    return hashlib.sha256(f"{layout}:{width}x{height}".encode()).hexdigest()[:16]
