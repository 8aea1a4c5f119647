"""A small local fleet of real processes for tests and benchmarks: redis-server, an origin,
N edges (each heart-beating on edge.health) and the steering service, on free ports.

    with LocalFleet(media_dir, tmp_path, edges=2) as fleet:
        fleet.steer_url            # http://127.0.0.1:PORT
        fleet.kill("edge-0")       # SIGKILL, as a crash

(`abr fleet up` is the user's way to run a fleet; this is the minimal one steering needs.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from abrstack.procs import stop_process
from abrstack.redisproc import RedisServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return json.loads(r.read())


def _wait(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


class LocalFleet:
    def __init__(self, media_dir: Path, state_dir: Path, edges: int = 2, ttl_s: int = 2,
                 health_timeout_s: float = 2.0, steer_args: tuple[str, ...] = ()) -> None:
        self.media_dir, self.state_dir = Path(media_dir), Path(state_dir)
        self.n_edges, self.ttl_s, self.health_timeout_s = edges, ttl_s, health_timeout_s
        self.steer_args = steer_args
        self.redis = RedisServer(self.state_dir / "redis")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.edges: dict[str, str] = {}
        self.origin_url = ""
        self.steer_url = ""

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.state_dir / f"{name}.log", "wb")  # noqa: SIM115 - kept by the process
        proc = subprocess.Popen([sys.executable, "-m", "abrstack", *argv], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def __enter__(self) -> LocalFleet:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.redis.start()
            port = free_port()
            o = self._start("origin", ["origin", "--media", str(self.media_dir), "--port", str(port),
                                       "--access-log", "off"])
            self.origin_url = f"http://127.0.0.1:{port}"
            _wait(self.origin_url + "/healthz", 20, o)
            for i in range(self.n_edges):
                self.start_edge(f"edge-{i}")
            sport = free_port()
            argv = ["steer", "--port", str(sport), "--redis", self.redis.url, "--ttl", str(self.ttl_s),
                    "--health-timeout", f"{self.health_timeout_s:g}", *self.steer_args]
            for name, url in self.edges.items():
                argv += ["--edge", f"{name}={url}"]
            s = self._start("steer", argv)
            self.steer_url = f"http://127.0.0.1:{sport}"
            _wait(self.steer_url + "/healthz", 20, s)
            self.wait_up(list(self.edges))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start_edge(self, name: str) -> str:
        http_port, tls_port = free_port(), free_port()
        p = self._start(name, ["edge", "--origin", self.origin_url, "--port", str(tls_port),
                               "--http-port", str(http_port), "--cache-dir",
                               str(self.state_dir / name), "--name", name, "--via-name", name,
                               "--redis", self.redis.url, "--access-log", "off"])
        url = f"http://127.0.0.1:{http_port}"
        _wait(url + "/healthz", 30, p)
        self.edges[name] = url
        return url

    def up(self) -> list[str]:
        edges = get_json(self.steer_url + "/edges")["edges"]
        return sorted(n for n, e in edges.items() if e["up"])

    def wait_up(self, names: list[str], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.up() == sorted(names):
                return
            time.sleep(0.1)
        raise RuntimeError(f"edges up: {self.up()}, expected {sorted(names)}")

    def kill(self, name: str) -> None:
        """SIGKILL an edge's process group (a crash: no goodbye, no last heartbeat)."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def hang(self, name: str) -> None:
        """SIGSTOP an edge's process group: its sockets stay open and answer nothing (a hung
        host); stopped for good at the end."""
        os.killpg(self.procs[name].pid, signal.SIGSTOP)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)
            stop_process(proc, 5.0)
        self.redis.stop()
