"""Serving the edge app: HTTP/1.1 cleartext and HTTP/1.1 + HTTP/2 over TLS (ALPN) with
granian, HTTP/3 over QUIC with our own server on aioquic (edge/h3server.py) on the same
port number (UDP), in one or several worker processes. Every worker runs one
:class:`EdgeApp` on one event loop: granian's Rust I/O hands requests to that loop, the
QUIC server runs on it.

Why two servers: on the same ASGI app and cache hits, granian served HTTP/2 over TLS
~4-7x and cleartext HTTP/1.1 ~2-5x faster than hypercorn (its TLS, HTTP framing and
flow control are Rust; hypercorn's h2 spent most of its time in pure-Python framing,
HPACK and the priority tree), but it has no HTTP/3. See README (edge) and bench/edge.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from abrstack import accesslog
from edge import aioquic_compat
from edge.app import EdgeApp, EdgeConfig
from edge.h3server import H3Server, H3Settings
from edge.handshakes import HandshakeLimits
from edge.quicio import udp_socket

log = logging.getLogger("abrstack.edge")

BACKLOG = 1024
DRAIN_S = 2
"""Seconds a stopping worker waits for open TCP connections to finish."""
H2_STREAM_BUFFER_BYTES = 256 * 1024
"""Bytes granian buffers per HTTP/2 stream beyond the peer's window. A stream whose
client keeps its window at 0 is cut after ``send_timeout_s`` and its connection closed
(edge/stalled.py); until then at most this × H2_MAX_STREAMS per connection."""
H2_MAX_STREAMS = 100
"""Concurrent HTTP/2 streams per connection (nginx: 128; a player needs a few)."""


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the edge listens."""

    app: EdgeConfig
    """The cache and origin settings."""
    host: str = "127.0.0.1"
    """Address to bind (``localhost`` binds 127.0.0.1, and QUIC also on ::1)."""
    port: int = 8443
    """TLS (h2 + http/1.1) over TCP and HTTP/3 over UDP; 0 picks a free port for both."""
    http_port: int | None = 8081
    """Cleartext HTTP/1.1; None disables it, 0 picks a free port."""
    certfile: Path | None = None
    """PEM certificate; None makes (once) a self-signed one in the cache dir."""
    keyfile: Path | None = None
    """PEM key for ``certfile``."""
    workers: int = 1
    """Worker processes sharing the ports (SO_REUSEPORT) and the disk cache."""
    header_timeout_s: float = 5.0
    """A connection that has not sent a complete request head within this closes; an
    HTTP/2 connection is also pinged after this much silence and closed when the PING is
    not answered within it."""
    max_header_bytes: int = 16 * 1024
    """Largest request head accepted: granian's HTTP/1.1 read buffer (at least 8 KiB) and
    HTTP/2 header list size."""
    access_log: str | None = "-"
    """Where the JSON access log goes: "-" stderr, a file path, or None."""
    quic_max_datagram_bytes: int = 1350
    """Largest QUIC datagram the edge sends (≥ 1200, clamped to the peer's
    ``max_udp_payload_size``). 1350 is safe on any path; on loopback (MTU 64 KiB)
    65000 makes h3 ~20x faster with aioquic clients, ~2x faster than 16000 (bench/edge.py)."""
    event_loop: str = "asyncio"
    """"asyncio", "uvloop" (must be installed) or "auto" (uvloop when installed); uvloop
    gave no clear gain in A/B runs here (loaded machine), so it is not a dependency."""
    quic_handshakes: HandshakeLimits = field(default_factory=HandshakeLimits)
    """Bounds on unfinished QUIC handshakes (edge/handshakes.py)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Tuning for tests and benchmarks: ``graceful_timeout`` (seconds a stopping worker
    lets open HTTP/3 requests finish; default 2)."""


@dataclass(frozen=True)
class BoundPorts:
    """The ports actually bound (useful when 0 was asked)."""

    host: str
    port: int
    http_port: int | None


# ------------------------------------------------------------------ sockets

def _tcp(host: str, port: int, reuseport: bool) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((host, port))
    s.setblocking(False)
    s.set_inheritable(True)
    return s


@dataclass
class Sockets:
    """A worker's bound sockets."""

    secure_sockets: list[socket.socket]
    insecure_sockets: list[socket.socket]
    quic_sockets: list[socket.socket]


def _bind_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


def bind_sockets(cfg: ServerConfig, reuseport: bool) -> tuple[Sockets, BoundPorts]:
    """Bind TLS/TCP + QUIC/UDP on one port number (retrying when 0 was asked) and the
    cleartext port. Returns the sockets and the ports bound."""
    host = _bind_host(cfg.host)
    for _ in range(50):
        tcp = _tcp(host, cfg.port, reuseport)
        port = tcp.getsockname()[1]
        try:
            quic = [udp_socket(host, port, reuseport)]
            if cfg.host == "localhost":
                with contextlib.suppress(OSError):
                    quic.append(udp_socket("::1", port, reuseport))  # Chromium resolves ::1 first
            break
        except OSError:
            tcp.close()
            if cfg.port:
                raise
    else:  # pragma: no cover - 50 collisions in a row
        raise OSError("could not bind TCP and UDP on one port")
    insecure = []
    http_port = None
    if cfg.http_port is not None:
        h = _tcp(host, cfg.http_port, reuseport)
        http_port = h.getsockname()[1]
        insecure.append(h)
    return Sockets([tcp], insecure, quic), BoundPorts(host, port, http_port)


def h3_server(app: EdgeApp, cfg: ServerConfig, certfile: Path, keyfile: Path,
              port: int) -> H3Server:
    """Our HTTP/3 server for the QUIC side (applies edge/aioquic_compat.py)."""
    return H3Server(app, H3Settings(
        certfile=str(certfile), keyfile=str(keyfile),
        max_datagram_bytes=cfg.quic_max_datagram_bytes,
        keep_alive_s=max(cfg.header_timeout_s, 5.0), handshakes=cfg.quic_handshakes,
        alt_svc_port=port))


def tcp_server(app: EdgeApp, sock: socket.socket, cfg: ServerConfig,
               certfile: Path | None = None, keyfile: Path | None = None) -> Any:
    """A granian server (embedded in this event loop) on an already bound socket: TLS
    with ALPN h2 + http/1.1 when a certificate is given, else cleartext HTTP/1.1."""
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels

    from edge.granian_compat import embedded_server

    fd = os.dup(sock.fileno())  # granian owns (and closes) this one; we close ours
    host, port = sock.getsockname()[:2]
    tls = certfile is not None
    server = embedded_server(
        fd, BACKLOG, app, address=host, port=port, interface=Interfaces.ASGINL,
        http=HTTPModes.auto if tls else HTTPModes.http1, websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, min(60_000, int(cfg.header_timeout_s * 1000))),
            max_buffer_size=max(8192, cfg.max_header_bytes)),
        http2_settings=HTTP2Settings(
            max_headers_size=cfg.max_header_bytes, max_send_buffer_size=H2_STREAM_BUFFER_BYTES,
            max_concurrent_streams=H2_MAX_STREAMS,
            keep_alive_interval=max(1000, int(cfg.header_timeout_s * 1000)),
            keep_alive_timeout=max(1, math.ceil(cfg.header_timeout_s))),
        # granian's logging.dictConfig must leave ours alone: levels only
        log_level=LogLevels.error, log_dictconfig={"incremental": True, "handlers": {},
                                                   "loggers": {}},
        ssl_cert=certfile, ssl_key=keyfile,
        ssl_protocol_min=SSLProtocols.tls12)
    server.workers_kill_timeout = DRAIN_S  # open keep-alive connections: stop waiting
    return server


def resolve_cert(cfg: ServerConfig) -> tuple[Path, Path]:
    from edge.tls import ensure_self_signed

    if cfg.certfile is not None and cfg.keyfile is not None:
        return cfg.certfile, cfg.keyfile
    return ensure_self_signed(cfg.app.cache_dir / "tls")


def setup_access_log(target: str | None) -> None:
    accesslog.setup("abrstack.edge.access", target)


async def serve(cfg: ServerConfig, *, sockets: Any = None, ports: BoundPorts | None = None,
                shutdown: Callable[[], Awaitable[Any]] | None = None,
                ready: Callable[[BoundPorts, EdgeApp], None] | None = None,
                worker: str = "0") -> None:
    """Run one worker in the current event loop until ``shutdown`` returns (or SIGINT /
    SIGTERM when ``shutdown`` is None)."""
    certfile, keyfile = resolve_cert(cfg)
    if sockets is None:
        sockets, ports = bind_sockets(cfg, reuseport=False)
    assert ports is not None
    app = EdgeApp(replace(cfg.app, worker=worker, alt_svc=f'h3=":{ports.port}"; ma=3600'))
    quic = h3_server(app, cfg, certfile, keyfile, ports.port)  # refuses another aioquic
    await app.startup()
    servers = [tcp_server(app, s, cfg, certfile, keyfile) for s in sockets.secure_sockets]
    servers += [tcp_server(app, s, cfg) for s in sockets.insecure_sockets]
    for s in [*sockets.secure_sockets, *sockets.insecure_sockets]:
        s.listen(BACKLOG)
    running = [asyncio.ensure_future(s.serve()) for s in servers]
    quic.listen(sockets.quic_sockets)
    if ready is not None:
        ready(ports, app)
    if shutdown is None:
        shutdown = _signalled()
    try:
        await shutdown()
    finally:
        for s in servers:  # all drain at once
            s.stop()
        await quic.close(float(cfg.extra.get("graceful_timeout", 2.0)))
        await asyncio.gather(*running, return_exceptions=True)
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
            sock.close()
        await app.shutdown()


def _signalled() -> Callable[[], Awaitable[Any]]:
    """A shutdown trigger set by SIGINT or SIGTERM (main thread only)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stopping.set)
    return stopping.wait


def run(cfg: ServerConfig, announce: Callable[[str], None] | None = None) -> int:
    """Run the edge in the foreground (``abr edge``); returns the exit code."""
    from edge.tls import spki_sha256_b64

    if announce is None:
        def announce(line: str) -> None:
            print(line, flush=True)

    aioquic_compat.apply()  # before anything starts: refuses an aioquic it was not written for
    setup_access_log(cfg.access_log)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    certfile, keyfile = resolve_cert(cfg)
    cfg = replace(cfg, certfile=certfile, keyfile=keyfile)
    reuse = cfg.workers > 1
    sockets, ports = bind_sockets(cfg, reuseport=reuse)
    shown = "localhost" if cfg.host == "localhost" else ports.host
    announce(f"abr edge: https://{shown}:{ports.port} (h2, http/1.1 over TLS; h3 over UDP)"
             + (f", http://{shown}:{ports.http_port} (h1)" if ports.http_port else "")
             + f"; origins {', '.join(cfg.app.upstream.origins)}; {cfg.workers} worker(s)")
    announce(f"abr edge: certificate {certfile}; SPKI sha256 (for Chromium "
             f"--ignore-certificate-errors-spki-list): {spki_sha256_b64(certfile)}")
    if cfg.workers <= 1:
        with contextlib.suppress(KeyboardInterrupt):
            run_loop(serve(cfg, sockets=sockets, ports=ports), cfg.event_loop)
        return 0
    for s in [*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets]:
        s.close()  # each worker binds its own SO_REUSEPORT sockets on the same ports
    fixed = replace(cfg, port=ports.port, http_port=ports.http_port)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker_main, args=(fixed, str(i)), daemon=False)
             for i in range(cfg.workers)]
    for p in procs:
        p.start()

    def _stop(*_: Any) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for p in procs:
        p.join()
    return max((p.exitcode or 0) for p in procs)


def _worker_main(cfg: ServerConfig, worker: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sockets, ports = bind_sockets(cfg, reuseport=True)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(cfg, sockets=sockets, ports=ports, worker=worker), cfg.event_loop)


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` on uvloop when asked ("uvloop") or available ("auto"), else asyncio."""
    factory = None
    if event_loop in ("auto", "uvloop"):
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            if event_loop == "uvloop":
                raise
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
