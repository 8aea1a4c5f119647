"""Finding and running the ffmpeg binary: the only place that starts ffmpeg.

The binary is the system's `ffmpeg` when one is on PATH, else the static build that the
PyPI package imageio-ffmpeg ships (ffmpeg 9 with libx264, libsvtav1, libvpx, libvmaf).
`ABR_FFMPEG` overrides both.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from functools import cache

from encoder.errors import Cancelled, EncoderError, FfmpegError

ProgressCallback = Callable[[float], None]
"""Called with the seconds of output written so far."""


@cache
def ffmpeg_exe() -> str:
    """The path of the ffmpeg binary to use."""
    override = os.environ.get("ABR_FFMPEG")
    if override:
        return override
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise EncoderError("no ffmpeg found: install ffmpeg or the imageio-ffmpeg package") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _listing(flag: str, line: str) -> frozenset[str]:
    """Names from `ffmpeg -encoders` / `-filters`: the word after the flag columns."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", flag], capture_output=True, text=True, check=False
    ).stdout
    return frozenset(m.group(1) for ln in out.splitlines() if (m := re.match(line, ln)))


@cache
def ffmpeg_encoders() -> frozenset[str]:
    """The names of the encoders the ffmpeg binary was built with."""
    return _listing("-encoders", r"^\s*[VAS][A-Z.]{5}\s+(\S+)")


@cache
def ffmpeg_filters() -> frozenset[str]:
    """The names of the filters the ffmpeg binary was built with (flags: 2 columns in 9.0, 3 before)."""
    return _listing("-filters", r"^\s*[TSC.]{2,3}\s+(\S+)\s")


_OUT_TIME = re.compile(r"^out_time_(?:us|ms)=(\d+)$")


def run_ffmpeg(
    args: list[str],
    *,
    what: str,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    die_with_parent: bool = False,
) -> None:
    """Run ffmpeg with `args` (without the binary); raise FfmpegError on failure.

    Progress comes from ffmpeg's `-progress pipe:1` key=value stream (added here), so the
    caller's args must not use stdout. `cancel` set from another thread stops ffmpeg.
    `die_with_parent` (Linux): ffmpeg is killed when the thread that started it dies, e.g.
    with a Dask worker killed mid-task, so it cannot write on beside the task's retry.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel", "warning",
           "-progress", "pipe:1", *args]
    tail: deque[str] = deque(maxlen=40)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # Ctrl-C reaches us, not ffmpeg: we stop it ourselves
        preexec_fn=_kill_with_parent if die_with_parent else None,  # noqa: PLW1509
    )

    def drain_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line.rstrip())

    reader = threading.Thread(target=drain_stderr, daemon=True)
    reader.start()
    watcher: threading.Thread | None = None
    if cancel is not None:

        def watch() -> None:
            while proc.poll() is None:
                if cancel.wait(0.2):
                    _stop(proc)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = _OUT_TIME.match(line.strip())
            if m and on_progress is not None:
                on_progress(int(m.group(1)) / 1_000_000)
        proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        reader.join(timeout=5)
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} was cancelled")
    if proc.returncode != 0:
        raise FfmpegError(_summarise(what, proc.returncode, list(tail)), cmd, "\n".join(tail))


def _kill_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent thread exits (PR_SET_PDEATHSIG)."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError):  # not Linux: a retry's fresh folder still keeps them apart
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _summarise(what: str, code: int, tail: list[str]) -> str:
    """One sentence from ffmpeg's log: the last line that looks like an error."""
    reason = ""
    for line in reversed(tail):
        low = line.lower()
        if any(w in low for w in ("error", "invalid", "no space", "unknown", "not found", "failed")):
            reason = re.sub(r"^\[[^\]]*\]\s*", "", line).strip()
            break
    if not reason and tail:
        reason = tail[-1].strip()
    if "No space left" in "\n".join(tail):
        reason = "no space left on the device"
    return f"{what} failed (ffmpeg exit code {code}): {reason or 'no message'}"


def ffmpeg_log(args: list[str], *, what: str, timeout_s: float = 120) -> str:
    """Run a short analysis (e.g. `idet` on a sample) and return ffmpeg's log (info level)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                             timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EncoderError(f"{what} took longer than {timeout_s:g} s") from exc
    if out.returncode != 0:
        tail = out.stderr.splitlines()[-40:]
        raise FfmpegError(_summarise(what, out.returncode, tail), cmd, "\n".join(tail))
    return out.stderr
