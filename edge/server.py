"""Serving the edge app with hypercorn: h1 cleartext, h1/h2 over TLS (ALPN) and h3 over
QUIC on the same port number, in one or several worker processes.

Tuning applied to hypercorn 0.18 / aioquic 1.7 (measured in bench/edge.py; see README):

- QUIC: larger flow-control windows (``max_data`` 16 MiB, ``max_stream_data`` 8 MiB, the
  1 MiB defaults stall a 1 MB object), a 4 MiB ``SO_RCVBUF``/``SO_SNDBUF`` on the UDP
  socket (the 208 KB default drops packets under load, FACTS.md), and a 1024-deep
  datagram queue in place of hypercorn's 10 (it silently drops datagrams past it).
- HTTP/2: hypercorn sends one DATA frame (16 KiB) per pass of its priority scheduler and
  flushes after each; :func:`_batched_send_data` sends up to the flow-control window
  (many frames) per pass and flushes once, which cuts the ``priority`` tree work that
  dominated profiles (FACTS.md: ~84% in ``priority.Stream.schedule``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.app import EdgeApp, EdgeConfig

log = logging.getLogger("abrstack.edge")

UDP_BUFFER_BYTES = 4 * 2**20


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
    """A connection that has not sent a complete request head within this closes."""
    max_header_bytes: int = 16 * 1024
    """Largest request head accepted over HTTP/1.1 (h11 ``max_incomplete_event_size``)."""
    access_log: str | None = "-"
    """Where the JSON access log goes: "-" stderr, a file path, or None."""
    quic_max_datagram_bytes: int = 1350
    """Largest QUIC datagram the edge sends (≥ 1200, clamped to the peer's
    ``max_udp_payload_size``). 1350 is safe on any path; on loopback (MTU 64 KiB)
    16000 makes h3 ~9x faster with aioquic clients (bench/edge.py)."""
    event_loop: str = "asyncio"
    """"asyncio", "uvloop" (must be installed) or "auto" (uvloop when installed); uvloop
    gave no clear gain in A/B runs here (loaded machine), so it is not a dependency."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further hypercorn Config attributes (tests and benchmarks)."""


@dataclass(frozen=True)
class BoundPorts:
    """The ports actually bound (useful when 0 was asked)."""

    host: str
    port: int
    http_port: int | None


# ------------------------------------------------------------------ tuning

_patched = False


def apply_tuning(quic_max_datagram_bytes: int = 1350) -> None:
    """Patch hypercorn's QUIC and HTTP/2 hot spots (idempotent)."""
    global _patched
    if _patched:
        return
    _patched = True
    import hypercorn.protocol.h2 as hh2
    import hypercorn.protocol.h11 as hh11

    from edge.quic import apply_quic_tuning

    apply_quic_tuning(quic_max_datagram_bytes)
    hh11.H11Protocol._send_h11_event = _coalesced_send_h11_event  # type: ignore[method-assign]
    hh2.H2Protocol._send_data = _batched_send_data  # type: ignore[method-assign]
    hh2.StreamBuffer = ChunkStreamBuffer  # type: ignore[misc,assignment]


async def _batched_send_data(self: Any, stream_id: int) -> None:
    """hypercorn's ``H2Protocol._send_data``, sending everything the flow-control window
    allows in one pass (one scheduler step, one flush) instead of one 16 KiB frame."""
    import h2.exceptions

    try:
        budget = max(0, self.connection.local_flow_control_window(stream_id))
        buffer = self.stream_buffers[stream_id]
        data = await buffer.pop(budget)
        if data:
            send_data_frames(self.connection, stream_id, data)
        else:
            self.priority.block(stream_id)
        if buffer.complete:
            self.connection.end_stream(stream_id)
            del self.stream_buffers[stream_id]
            self.priority.remove_stream(stream_id)
        await self._flush()  # one TLS write for the data and the end of the stream
    except (h2.exceptions.StreamClosedError, KeyError, h2.exceptions.ProtocolError):
        buf = self.stream_buffers.get(stream_id)
        if buf is not None:
            await buf.close()
            del self.stream_buffers[stream_id]
        with contextlib.suppress(Exception):
            self.priority.remove_stream(stream_id)


class ChunkStreamBuffer:
    """hypercorn's HTTP/2 ``StreamBuffer`` keeping the app's chunks as they are: a
    popped chunk that fits is handed on without the bytearray copy-in and copy-out (two
    copies of every body byte in hypercorn's version). Same interface and
    flow control: the app's ``push`` waits while 32 KiB or more are queued, and resumes
    once a ``pop`` leaves less than 16 KiB."""

    HIGH_WATER = 2 * 2**14
    LOW_WATER = 2**14

    def __init__(self, event_class: Any) -> None:
        from collections import deque

        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._complete = False
        self._is_empty = event_class()
        self._paused = event_class()

    async def drain(self) -> None:
        await self._is_empty.wait()

    def set_complete(self) -> None:
        self._complete = True

    async def close(self) -> None:
        self._complete = True
        self._chunks.clear()
        self._size = 0
        await self._is_empty.set()
        await self._paused.set()

    @property
    def complete(self) -> bool:
        return self._complete and self._size == 0

    async def push(self, data: bytes) -> None:
        from hypercorn.protocol.h2 import BufferCompleteError

        if self._complete:
            raise BufferCompleteError()
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
        await self._is_empty.clear()
        if self._size >= self.HIGH_WATER:
            await self._paused.wait()
            await self._paused.clear()

    async def pop(self, max_length: int) -> bytes:
        parts: list[bytes] = []
        taken = 0
        while self._chunks and taken < max_length:
            chunk = self._chunks[0]
            room = max_length - taken
            if len(chunk) <= room:
                parts.append(self._chunks.popleft())
                taken += len(chunk)
            else:
                parts.append(chunk[:room])
                self._chunks[0] = chunk[room:]
                taken += room
        self._size -= taken
        if self._size < self.LOW_WATER:
            await self._paused.set()
        if self._size == 0:
            await self._is_empty.set()
        return parts[0] if len(parts) == 1 else b"".join(parts)


COALESCE_BYTES = 128 * 1024


async def _coalesced_send_h11_event(self: Any, event: Any) -> None:
    """hypercorn's ``H11Protocol._send_h11_event``, holding a response head back until
    the first body bytes so that both leave in one write (one syscall, one packet) when
    the first chunk is small: halves the writes of a crowd's first bytes and of 100 KB
    hits."""
    import h11
    from hypercorn.events import RawData

    pending = self.__dict__.pop("_abr_head", None)
    try:
        data = self.connection.send(event)
    except h11.LocalProtocolError:
        if pending is not None:
            await self.send(RawData(data=pending))
        if self.connection.their_state != h11.ERROR:
            raise
        return
    if type(event) is h11.Response and pending is None:
        self.__dict__["_abr_head"] = data
        return
    if pending is not None:
        if len(data) <= COALESCE_BYTES:
            data = pending + data
        else:
            await self.send(RawData(data=pending))
    await self.send(RawData(data=data))


def send_data_frames(conn: Any, stream_id: int, data: bytes) -> None:
    """Queue ``data`` on an h2 ``H2Connection`` as DATA frames of the peer's maximum
    frame size (RFC 9113 §6.1), doing h2's per-frame bookkeeping (state machines,
    flow-control windows) once for the whole run instead of once per 16 KiB frame,
    which was most of hypercorn's HTTP/2 CPU time for large bodies."""
    import h2.exceptions
    from h2.connection import ConnectionInputs
    from h2.stream import StreamInputs

    frame = conn.max_outbound_frame_size
    n = len(data)
    if n <= frame:
        conn.send_data(stream_id, data)
        return
    if n > conn.local_flow_control_window(stream_id):
        raise h2.exceptions.FlowControlError("window too small")
    stream = conn.streams[stream_id]
    conn.state_machine.process_input(ConnectionInputs.SEND_DATA)
    stream.state_machine.process_input(StreamInputs.SEND_DATA)
    stream.outbound_flow_control_window -= n
    conn.outbound_flow_control_window -= n
    sid = struct.pack(">I", stream_id & 0x7FFFFFFF)
    mv = memoryview(data)
    out = conn._data_to_send  # noqa: SLF001 - h2's outgoing bytearray
    for i in range(0, n, frame):
        chunk = mv[i:i + frame]
        out += struct.pack(">I", len(chunk))[1:] + b"\x00\x00" + sid  # length, DATA, flags
        out += chunk


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


def _udp(host: str, port: int, reuseport: bool) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, opt, UDP_BUFFER_BYTES)
    s.bind((host, port))
    s.setblocking(False)
    return s


def _bind_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


def bind_sockets(cfg: ServerConfig, reuseport: bool) -> tuple[Any, BoundPorts]:
    """Bind TLS/TCP + QUIC/UDP on one port number (retrying when 0 was asked) and the
    cleartext port. Returns hypercorn ``Sockets`` and the ports bound."""
    from hypercorn.config import Sockets

    host = _bind_host(cfg.host)
    for _ in range(50):
        tcp = _tcp(host, cfg.port, reuseport)
        port = tcp.getsockname()[1]
        try:
            quic = [_udp(host, port, reuseport)]
            if cfg.host == "localhost":
                with contextlib.suppress(OSError):
                    quic.append(_udp("::1", port, reuseport))  # Chromium resolves ::1 first
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


def hypercorn_config(cfg: ServerConfig, certfile: Path, keyfile: Path, port: int) -> Any:
    from hypercorn.config import Config

    hc = Config()
    hc.certfile, hc.keyfile = str(certfile), str(keyfile)
    hc.alpn_protocols = ["h2", "http/1.1"]
    hc.alt_svc_headers = [f'h3=":{port}"; ma=3600']
    hc.keep_alive_timeout = cfg.header_timeout_s  # hypercorn's idle timer runs until a
    # complete request head arrives, so this is also the slow-header (slowloris) limit
    hc.h11_max_incomplete_size = cfg.max_header_bytes
    hc.h2_max_header_list_size = cfg.max_header_bytes
    hc.keep_alive_max_requests = 1_000_000
    hc.include_server_header = False
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 2.0
    hc.backlog = 1024
    for k, v in cfg.extra.items():
        setattr(hc, k, v)
    return hc


def resolve_cert(cfg: ServerConfig) -> tuple[Path, Path]:
    from edge.tls import ensure_self_signed

    if cfg.certfile is not None and cfg.keyfile is not None:
        return cfg.certfile, cfg.keyfile
    return ensure_self_signed(cfg.app.cache_dir / "tls")


def setup_access_log(target: str | None) -> None:
    logger = logging.getLogger("abrstack.edge.access")
    logger.propagate = False
    logger.handlers.clear()
    if target is None:
        logger.setLevel(logging.WARNING)
        return
    handler: logging.Handler = (logging.StreamHandler(sys.stderr) if target == "-"
                                else logging.FileHandler(target))
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


async def serve(cfg: ServerConfig, *, sockets: Any = None, ports: BoundPorts | None = None,
                shutdown: Callable[[], Awaitable[Any]] | None = None,
                ready: Callable[[BoundPorts, EdgeApp], None] | None = None,
                worker: str = "0") -> None:
    """Run one worker in the current event loop until ``shutdown`` returns."""
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import wrap_app

    apply_tuning(cfg.quic_max_datagram_bytes)
    certfile, keyfile = resolve_cert(cfg)
    if sockets is None:
        sockets, ports = bind_sockets(cfg, reuseport=False)
    assert ports is not None
    app = EdgeApp(replace(cfg.app, worker=worker))
    hc = hypercorn_config(cfg, certfile, keyfile, ports.port)
    if ready is not None:
        ready(ports, app)
    wrapped = wrap_app(app, hc.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    await worker_serve(wrapped, hc, sockets=sockets,
                       shutdown_trigger=shutdown)


def run(cfg: ServerConfig, announce: Callable[[str], None] | None = None) -> int:
    """Run the edge in the foreground (``abr edge``); returns the exit code."""
    from edge.tls import spki_sha256_b64

    if announce is None:
        def announce(line: str) -> None:
            print(line, flush=True)

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
