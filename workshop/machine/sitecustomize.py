"""Loaded by Python at start-up in every process the harness runs as a separate machine
(a cms node, a worker, a beat, a rehearsal pod), because the harness puts this folder on
its PYTHONPATH. cms knows nothing of it.

It watches what the process writes to a local disk, wherever that is (its own folder, a
temporary folder, the home folder, a path other "machines" on this computer can also
reach), with a Python audit hook (PEP 578: every `open` for writing, `os.mkdir`,
`os.rename`), and appends one JSON line per write to the file named by
WORKSHOP_LOCAL_WRITES, with the line of code that did it. workshop/local_writes.py reads
those lines. Imports, bytecode caches and devices are not writes of the app's.
"""

import json
import os
import sys
import sysconfig
import threading
import time

_LOG = os.environ.get("WORKSHOP_LOCAL_WRITES")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_IGNORED_PREFIXES = ("/dev/", "/proc/", "/sys/")
# Frames in these folders are the machinery (the standard library, installed packages):
# the write is reported at the first frame outside them, the app's or the lab's own line.
_LIBRARY_DIRS = tuple(
    {os.path.realpath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_THIS_FILE = os.path.realpath(__file__)
# PYTHONPYCACHEPREFIX: bytecode cached in one folder instead of __pycache__ folders
_PYCACHE_PREFIX = os.path.abspath(sys.pycache_prefix) + os.sep if sys.pycache_prefix else None
_busy = threading.local()


def _where(frame) -> tuple[str, list[str]]:
    """The line of code that wrote ("audit_sink.py:9 in AuditSink.record": the innermost
    frame outside the library folders), and the modules of the app's frames on the stack
    (innermost first), so a check can tell which part of the app wrote."""
    innermost, chosen, modules = None, None, []
    while frame is not None:
        filename = os.path.realpath(frame.f_code.co_filename)
        if filename != _THIS_FILE:
            innermost = innermost or frame
            if not filename.startswith(_LIBRARY_DIRS) and not filename.startswith("<frozen"):
                chosen = chosen or frame
                module = frame.f_globals.get("__name__", "?")
                if module not in modules:
                    modules.append(module)
        frame = frame.f_back
    frame = chosen or innermost
    if frame is None:
        return "?", modules
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)  # "FileAuditSink.record" (Python 3.11+)
    return f"{os.path.basename(code.co_filename)}:{frame.f_lineno} in {name}", modules


def _path(value) -> str | None:
    if isinstance(value, int):  # an open file descriptor, not a path
        return None
    path = os.fsdecode(value)
    return os.path.abspath(path)


def _written(event: str, args: tuple) -> str | None:
    """The path this audit event writes to, or None when it is not a write."""
    if event == "open":
        path, mode, flags = args
        if path is None:
            return None
        if mode is not None:
            writes = any(letter in mode for letter in "wax+")
        else:
            writes = bool(flags & _WRITE_FLAGS)
        return _path(path) if writes else None
    if event == "os.mkdir":
        return _path(args[0])
    if event == "os.rename":  # also os.replace
        return _path(args[1])
    return None


def _is_bytecode(path: str) -> bool:
    """Python's cache of compiled modules ("x.cpython-311.pyc", written as "x.cpython-311.pyc.<n>", renamed)."""
    return "__pycache__" in path or path.endswith(".pyc") or bool(_PYCACHE_PREFIX and path.startswith(_PYCACHE_PREFIX))


def _hook(event: str, args: tuple) -> None:
    if event not in ("open", "os.mkdir", "os.rename") or getattr(_busy, "active", False):
        return
    _busy.active = True
    try:
        path = _written(event, args)
        if not path or path.startswith(_IGNORED_PREFIXES) or _is_bytecode(path):
            return
        where, modules = _where(sys._getframe(1))
        record = {
            "machine": os.environ.get("CMS_NODE_NAME", "?"),
            "pid": os.getpid(),
            "path": path,
            "event": event,
            "where": where,
            "modules": modules,
            "at": time.time(),
        }
        os.write(_fd, (json.dumps(record) + "\n").encode())
    except Exception:  # never break the app: a write we fail to report is only not reported
        pass
    finally:
        _busy.active = False


if _LOG:
    # Opened before the hook exists, so the report file is not a write of the app's.
    # O_APPEND: forked children (uWSGI workers, Celery pool children) share it line by line.
    _fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.addaudithook(_hook)
