"""A small HTTP/3 client on aioquic's sans-I/O API (for tests, the benchmark and the player).

    async with H3Client("127.0.0.1", 8443, verify=False) as c:
        r = await c.get("/media/t/360p/seg-00001.m4s")
        r.status, r.headers["x-cache"], len(r.body)

        async for chunk in c.stream("/media/big.bin", on_headers=...):   # streaming
            ...

One QUIC connection carries any number of concurrent requests (one stream each). The
I/O is edge/quicio.py's (every waiting datagram read at once; ACKs and flow-control
updates sent when aioquic's timer says so, not after each datagram, which had made the
client CPU-bound); 16/8 MiB flow-control windows, 4 MiB socket buffers. Connecting
applies edge/aioquic_compat.py (which refuses an aioquic it was not written for).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted

from edge import aioquic_compat
from edge.quicio import BUFFER_BYTES, Batch, DatagramSocket, QuicDriver


@dataclass
class H3Response:
    """A complete HTTP/3 response."""

    status: int
    headers: dict[str, str]
    body: bytes
    ttfb_s: float = 0.0
    """Seconds from sending the request to the first body byte (or the headers)."""


class H3Error(Exception):
    """The HTTP/3 exchange failed (connection closed, no headers)."""


class _Stream:
    """One request's response: HEADERS events and body chunks in order, and whether
    the stream ended; the reader waits on ``waiter`` (no queue per event)."""

    __slots__ = ("items", "ended", "waiter")

    def __init__(self) -> None:
        self.items: deque[bytes | HeadersReceived] = deque()
        self.ended = False
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)


_CRYPTO_ERROR = 0x100
_CERTIFICATE_ALERTS = frozenset({42, 43, 44, 45, 46, 48})
"""TLS alerts (RFC 8446 §6) that say the peer's certificate was not accepted."""


def _connect_error(event: ConnectionTerminated) -> Exception:
    """What a connection closed before its handshake completed raises."""
    if event.error_code - _CRYPTO_ERROR in _CERTIFICATE_ALERTS:  # RFC 9001 §4.8
        err = ssl.SSLCertVerificationError(event.reason_phrase)
        err.verify_message = event.reason_phrase
        return err
    return ConnectionError(f"QUIC connection closed during the handshake: "
                           f"{event.reason_phrase or hex(event.error_code)}")


class _Connection(QuicDriver):
    """The client's QUIC connection and its HTTP/3 layer."""

    def __init__(self, quic: QuicConnection, endpoint: DatagramSocket) -> None:
        super().__init__(quic, endpoint)
        self.http = H3Connection(quic)
        self.streams: dict[int, _Stream] = {}
        self.connected: asyncio.Future[None] = self.loop.create_future()

    def received(self, batch: Batch) -> None:
        quic, clock = self.quic, self.loop.time
        for data, addr in batch:
            quic.receive_datagram(data, addr, now=clock())
        self.handle_events()
        timer_at = quic.get_timer()
        if self.flush_pending or (timer_at is not None and timer_at <= clock()):
            self.transmit()
        else:
            self.arm(timer_at)

    def refused(self, error: OSError) -> None:
        """An ICMP error on the socket: before the handshake ends, nothing listens there."""
        if isinstance(error, ConnectionRefusedError) and not self.connected.done():
            self.stop_timer()
            self.connected.set_exception(error)

    def handle_events(self) -> None:
        quic = self.quic
        event = quic.next_event()
        while event is not None:
            if isinstance(event, HandshakeCompleted):
                if not self.connected.done():
                    self.connected.set_result(None)
            elif isinstance(event, ConnectionTerminated):
                self.stop_timer()
                if not self.connected.done():
                    self.connected.set_exception(_connect_error(event))
                for ended in self.streams.values():
                    ended.ended = True
                    ended.wake()
                return
            for ev in self.http.handle_event(event):
                st = self.streams.get(getattr(ev, "stream_id", -1))
                if st is None:
                    continue
                if type(ev) is DataReceived:
                    if ev.data:
                        st.items.append(ev.data)
                elif type(ev) is HeadersReceived:
                    st.items.append(ev)
                else:
                    continue
                if ev.stream_ended:
                    st.ended = True
                st.wake()
            event = quic.next_event()


class H3Client:
    """One HTTP/3 connection to ``host:port``."""

    def __init__(self, host: str, port: int, *, verify: bool = False, cafile: str | None = None,
                 server_name: str | None = None, max_datagram_bytes: int = 1350,
                 rcvbuf_bytes: int = BUFFER_BYTES) -> None:
        self.host, self.port = host, port
        cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        cfg.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        if cafile:
            cfg.load_verify_locations(cafile)
        cfg.server_name = server_name or ("localhost" if host in ("127.0.0.1", "::1") else host)
        cfg.max_data = 16 * 2**20
        cfg.max_stream_data = 8 * 2**20
        cfg.max_datagram_size = max_datagram_bytes
        self.config = cfg
        self.rcvbuf_bytes = rcvbuf_bytes
        self.conn: _Connection | None = None

    async def __aenter__(self) -> H3Client:
        aioquic_compat.apply()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            sock.connect(addr)  # so that the kernel reports "port unreachable" to us
            endpoint = DatagramSocket(sock, lambda batch: None, loop)
        except BaseException:
            sock.close()
            raise
        quic = QuicConnection(configuration=self.config)
        conn = self.conn = _Connection(quic, endpoint)
        endpoint.on_batch = conn.received
        endpoint.on_error = conn.refused
        quic.connect(addr, now=loop.time())
        conn.transmit()
        try:
            await conn.connected
        except BaseException:
            conn.stop_timer()
            endpoint.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.quic.close()
                conn.transmit()  # CONNECTION_CLOSE goes out before the socket closes
            conn.stop_timer()
            conn.endpoint.close()

    def _send(self, method: str, path: str, headers: dict[str, str] | None) -> tuple[int, _Stream]:
        conn = self.conn
        if conn is None or conn.closed:
            raise H3Error("the connection is closed")
        sid = conn.quic.get_next_available_stream_id()
        st = _Stream()
        conn.streams[sid] = st
        hs = [(b":method", method.encode()), (b":scheme", b"https"),
              (b":authority", f"{self.host}:{self.port}".encode()), (b":path", path.encode()),
              (b"user-agent", b"abrstack-h3")]
        hs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        conn.http.send_headers(stream_id=sid, headers=hs, end_stream=True)
        conn.schedule()  # requests made together share packets
        return sid, st

    async def stream(self, path: str, headers: dict[str, str] | None = None, method: str = "GET",
                     on_headers: Callable[[int, dict[str, str]], None] | None = None
                     ) -> AsyncIterator[bytes]:
        """Send a request; call ``on_headers(status, headers)``; yield body chunks."""
        sid, st = self._send(method, path, headers)
        conn = self.conn
        assert conn is not None
        loop = conn.loop
        items = st.items
        try:
            got_headers = False
            while True:
                while items:
                    item = items.popleft()
                    if isinstance(item, bytes):
                        yield item
                    elif not got_headers:
                        got_headers = True
                        if on_headers is not None:
                            hd = {k.decode(): v.decode() for k, v in item.headers}
                            on_headers(int(hd.pop(":status", "0")), hd)
                if st.ended:
                    if not got_headers:
                        raise H3Error("stream ended without headers")
                    return
                st.waiter = loop.create_future()
                await st.waiter
        finally:
            conn.streams.pop(sid, None)
            if not st.ended and not conn.closed:  # abandoned: ask the server to stop
                with contextlib.suppress(Exception):
                    conn.quic.stop_stream(sid, 0x10C)  # H3_REQUEST_CANCELLED
                conn.schedule()

    async def get(self, path: str, headers: dict[str, str] | None = None,
                  method: str = "GET") -> H3Response:
        """A whole response."""
        t0 = time.perf_counter()
        box: dict[str, Any] = {}

        def on_headers(status: int, hd: dict[str, str]) -> None:
            box["status"], box["headers"] = status, hd
            box["t_headers"] = time.perf_counter()

        parts: list[bytes] = []
        first: float | None = None
        async for chunk in self.stream(path, headers, method, on_headers):
            if first is None:
                first = time.perf_counter()
            parts.append(chunk)
        ttfb = (first or box.get("t_headers", t0)) - t0
        return H3Response(box["status"], box["headers"], b"".join(parts), ttfb)


async def fetch(url: str, **kw: Any) -> H3Response:
    """One-shot GET of an ``https://host:port/path`` URL over HTTP/3."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    async with H3Client(u.hostname or "127.0.0.1", u.port or 443, **kw) as c:
        return await c.get(u.path + (f"?{u.query}" if u.query else ""))
