"""Whether a process a test started has ended (imported by test modules, as cli_support is)."""

import psutil


def has_ended(process: psutil.Process | int) -> bool:
    """Gone, or a zombie: it has ended, whoever reaps it (a killed group's workers are left to the
    system's init when their master died with them). A `psutil.Process` is also ended once its
    pid belongs to another process."""
    try:
        process = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
