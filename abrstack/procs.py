"""Processes: whether a pid (of a lock, a marker file, a namespace) still runs."""

from __future__ import annotations

import os
import subprocess
from typing import Any


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(proc: subprocess.Popen[Any], timeout_s: float) -> None:
    """SIGTERM ``proc``, wait up to ``timeout_s`` for it to exit, then SIGKILL it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
