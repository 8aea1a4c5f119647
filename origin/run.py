"""Running the origin: one process, or several worker processes sharing a port.

With ``workers > 1`` each worker opens its own listening socket on the same address with
``SO_REUSEPORT`` and the kernel spreads new connections across them (Linux ≥ 3.9), the way
nginx's ``worker_processes`` with ``reuseport`` does. Each worker has its own metrics.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from origin.errors import OriginError


@dataclass(frozen=True)
class ServeConfig:
    """How to run the origin."""

    media_dir: Path
    """The media root (one folder per title)."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """TCP port (0: any free port)."""
    workers: int = 1
    """Worker processes (SO_REUSEPORT when more than one)."""
    node_modules: Path | None = None
    """Where npm installed hls.js and dash.js (default: the project root's node_modules)."""
    access_log: str | None = "-"
    """JSON access log: "-" stderr, a file path, or None (off)."""
    redis: str | None = None
    """The event bus: the catalog follows its `titles` events (None: scanned per request)."""


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to (host, port), listening; raises OriginError if it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OriginError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _die_with_parent() -> None:
    """Asks Linux to send SIGTERM to this worker when the parent dies (prctl(2))."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass  # not Linux: workers then outlive a killed parent, as with most servers


def _run_on(config: ServeConfig, sock: socket.socket) -> None:
    from aiohttp import web

    from abrstack import accesslog
    from origin.server import make_app

    accesslog.setup("abrstack.origin.access", config.access_log)
    app = make_app(config.media_dir, node_modules=config.node_modules, redis_url=config.redis)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


def _worker(config: ServeConfig, port: int) -> None:
    _die_with_parent()
    _run_on(config, listening_socket(config.host, port, reuse_port=True))


def serve(config: ServeConfig) -> None:
    """Serves until interrupted (SIGINT/SIGTERM stop every worker)."""
    if not config.media_dir.is_dir():
        raise OriginError(f"the media folder {config.media_dir} does not exist")
    if config.workers < 1:
        raise OriginError(f"--workers must be at least 1, not {config.workers}")
    first = listening_socket(config.host, config.port, reuse_port=config.workers > 1)
    port = first.getsockname()[1]
    url = f"http://{config.host}:{port}"
    print(
        f"abr origin: serving {config.media_dir} on {url}/ "
        f"({config.workers} worker{'s' if config.workers > 1 else ''}); "
        f"catalog {url}/titles, player {url}/play/NAME",
        flush=True,
    )
    from origin.catalog import scan

    for title in scan(config.media_dir):
        print(f"  {title['name']}: {url}/play/{title['name']}", flush=True)
    if config.workers == 1:
        _run_on(config, first)
        return
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_worker, args=(config, port), daemon=True)
        for _ in range(config.workers - 1)
    ]
    for child in children:
        child.start()

    def stop_children(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop_children)
    try:
        _run_on(config, first)  # the parent is a worker too
    finally:
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(timeout=5)
