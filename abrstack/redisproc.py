"""A private `redis-server` for the stack and the tests: 127.0.0.1, a free port, append-only
persistence in a state folder, stopped at the end (used when no `--redis URL` is given)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from abrstack.errors import AbrError
from abrstack.procs import stop_process


class RedisServerError(AbrError):
    """The private redis-server could not be started."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_argv(exe: str, port: int, state_dir: Path) -> list[str]:
    """redis-server on 127.0.0.1:``port`` with append-only persistence in ``state_dir``."""
    return [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(state_dir),
            "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
            "--loglevel", "warning", "--logfile", str(state_dir / "redis.log")]


def answers_ping(port: int) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; `start()` may be called again after `stop()` (same port and
    state folder, so the append-only file brings the streams back)."""

    def __init__(self, state_dir: Path, port: int | None = None, startup_timeout_s: float = 10.0):
        self.state_dir = Path(state_dir)
        self.port = port or _free_port()
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RedisServerError(
                "redis-server is not installed; run `make setup` (or apt-get install redis-server)"
                " or pass --redis URL."
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = redis_argv(exe, self.port, self.state_dir)
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
                raise RedisServerError(f"redis-server exited at start on port {self.port}: {err.strip()}")
            if answers_ping(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"redis-server did not answer on port {self.port} within "
                               f"{self.startup_timeout_s:g} s.")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, 10)  # SIGTERM: redis flushes the append-only file and exits

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
