"""Running the services as processes: an origin and an edge in front of it, started in
the background and stopped when the block ends — also on Ctrl-C, SIGTERM or failure.
Used by `abr demo`, the end-to-end tests and the benchmarks.

    with running_stack(Path("media"), Path("out/stack")) as stack:
        stack.edge_http      # http://127.0.0.1:PORT  (HTTP/1.1)
        stack.edge_https     # https://127.0.0.1:PORT (h2 / http/1.1 over TLS, h3 over QUIC)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from abrstack.errors import AbrError

ABR = [sys.executable, "-m", "abrstack"]


class StackError(AbrError):
    """A service did not start."""


@dataclass(frozen=True)
class Stack:
    origin: str
    """Origin base URL."""
    edge_http: str
    """Edge base URL over cleartext HTTP/1.1."""
    edge_https: str
    """Edge base URL over TLS (h2, http/1.1) and QUIC (h3), same port."""
    certfile: Path
    """The edge's certificate (self-signed unless given)."""
    spki: str
    """Base64 SHA-256 of the certificate's SPKI (Chromium's --ignore-certificate-errors-spki-list)."""
    access_log: Path
    """The edge's JSON access log."""
    pids: tuple[int, ...]
    """Process ids of the services."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def background(argv: list[str], **popen: object) -> Iterator[subprocess.Popen[str]]:
    """Run `argv` in its own process group; SIGTERM (then SIGKILL) the whole group at the end."""
    proc = subprocess.Popen(argv, text=True, start_new_session=True, **popen)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as err, background(argv, stdout=subprocess.PIPE, stderr=err) as proc:
        yield proc


def _wait_healthy(url: str, proc: subprocess.Popen[str], log: Path, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-500:].strip().splitlines()
            raise StackError(f"the {what} exited at start ({tail[-1] if tail else 'no message'})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise StackError(f"the {what} did not answer {url} within {timeout_s:.0f} s")


@contextlib.contextmanager
def running_origin_process(media: Path, workdir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    log = workdir / "origin.log"
    with _process([*ABR, "origin", "--media", str(media), "--port", str(port)], log) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url + "/healthz", proc, log, "origin")
        yield url, proc


@contextlib.contextmanager
def running_edge_process(origin: str, workdir: Path, *extra: str, port: int = 0, http_port: int = 0
                         ) -> Iterator[tuple[str, str, Path, str, subprocess.Popen[str]]]:
    """`abr edge` in front of `origin` (ports 0: any free ones); yields its URLs, cert, SPKI, process."""
    log = workdir / "edge.log"
    access = workdir / "edge-access.log"
    argv = [*ABR, "edge", "--origin", origin, "--port", str(port), "--http-port", str(http_port),
            "--cache-dir", str(workdir / "edge-cache"), "--access-log", str(access), *extra]
    with _process(argv, log) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.search(r"https://[\d.]+:(\d+).*?http://[\d.]+:(\d+)", first)
        if not m:
            tail = log.read_text()[-500:].strip().splitlines()
            raise StackError(f"the edge did not start ({tail[-1] if tail else first.strip() or 'no message'})")
        spki_line = proc.stdout.readline()
        spki = re.search(r"[A-Za-z0-9+/]{43}=", spki_line)
        port, http_port = int(m.group(1)), int(m.group(2))
        _wait_healthy(f"http://127.0.0.1:{http_port}/healthz", proc, log, "edge")
        cert = workdir / "edge-cache" / "tls" / "edge-cert.pem"
        yield (f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{port}", cert,
               spki.group(0) if spki else "", proc)


@contextlib.contextmanager
def running_stack(media: Path, workdir: Path, *edge_args: str) -> Iterator[Stack]:
    """An origin serving `media` and an edge in front of it, as background processes."""
    workdir.mkdir(parents=True, exist_ok=True)
    with running_origin_process(media, workdir) as (origin, oproc), \
            running_edge_process(origin, workdir, *edge_args) as (http, https, cert, spki, eproc):
        yield Stack(origin, http, https, cert, spki, workdir / "edge-access.log", (oproc.pid, eproc.pid))
