"""A small HTTP/3 client on aioquic (for tests, the benchmark and the player).

    async with H3Client("127.0.0.1", 8443, verify=False) as c:
        r = await c.get("/media/t/360p/seg-00001.m4s")
        r.status, r.headers["x-cache"], len(r.body)

        async for chunk in c.stream("/media/big.bin", on_headers=...):   # streaming
            ...

Tuned for loopback throughput: 16/8 MiB flow-control windows, a 4 MiB UDP receive
buffer (the 208 KB default drops packets, FACTS.md). One QUIC connection carries any
number of concurrent requests (one stream each).
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
from typing import Any, cast

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

from edge.quic import read_datagrams_directly, recv_batch


@dataclass
class H3Response:
    """A complete HTTP/3 response."""

    status: int
    headers: dict[str, str]
    body: bytes
    ttfb_s: float = 0.0
    """Seconds from sending the request to the first body byte (or the headers)."""


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


class _Protocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.streams: dict[int, _Stream] = {}
        self._sock: socket.socket | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self._end_all()
            return
        for ev in self.http.handle_event(event):
            if isinstance(ev, DataReceived):
                st = self.streams.get(ev.stream_id)
                if st is None:
                    continue
                if ev.data:
                    st.items.append(ev.data)
            elif isinstance(ev, HeadersReceived):
                st = self.streams.get(ev.stream_id)
                if st is None:
                    continue
                st.items.append(ev)
            else:
                continue
            if ev.stream_ended:
                st.ended = True
            st.wake()

    def _end_all(self) -> None:
        for st in self.streams.values():
            st.ended = True
            st.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._end_all()

    def batch_reads(self) -> None:
        """Read every waiting datagram per readiness event and send (ACKs, flow
        control) when the QUIC timer is due, not after each datagram: asyncio reads one
        datagram per loop iteration and aioquic transmits after each, which made the
        client CPU-bound. Falls back to asyncio's path where that is not possible."""
        self._sock = read_datagrams_directly(self._transport, self._loop, self._read_ready)

    def _read_ready(self) -> None:
        assert self._sock is not None
        quic = self._quic
        clock = self._loop.time
        batch = recv_batch(self._sock)
        for data, addr in batch:
            quic.receive_datagram(data, addr, now=clock())
        if not batch:
            return
        self._process_events()
        timer_at = quic.get_timer()
        if timer_at is not None and timer_at <= clock():
            self.transmit()
        elif timer_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if timer_at is not None:
                self._timer = self._loop.call_at(timer_at, self._handle_timer)
            self._timer_at = timer_at


_CRYPTO_ERROR = 0x100
_CERTIFICATE_ALERTS = frozenset({42, 43, 44, 45, 46, 48})
"""TLS alerts (RFC 8446 §6) that say the peer's certificate was not accepted."""


class H3Error(Exception):
    """The HTTP/3 exchange failed (connection closed, no headers)."""


class H3Client:
    """One HTTP/3 connection to ``host:port``."""

    def __init__(self, host: str, port: int, *, verify: bool = False, cafile: str | None = None,
                 server_name: str | None = None, max_datagram_bytes: int = 1350,
                 rcvbuf_bytes: int = 4 * 2**20) -> None:
        from edge.quic import patch_aioquic

        patch_aioquic()
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
        self._cm: Any = None
        self.proto: _Protocol | None = None

    async def __aenter__(self) -> H3Client:
        made: list[_Protocol] = []

        def protocol(*args: Any, **kwargs: Any) -> _Protocol:
            made.append(_Protocol(*args, **kwargs))
            return made[-1]

        self._cm = connect(self.host, self.port, configuration=self.config,
                           create_protocol=protocol, wait_connected=True)
        try:
            self.proto = cast(_Protocol, await self._cm.__aenter__())
        except ConnectionError as exc:
            closed = getattr(made[0]._quic, "_close_event", None) if made else None  # noqa: SLF001
            code = getattr(closed, "error_code", 0)
            if code - _CRYPTO_ERROR in _CERTIFICATE_ALERTS:  # RFC 9001 §4.8: 0x100 + TLS alert
                err = ssl.SSLCertVerificationError(closed.reason_phrase)  # type: ignore[union-attr]
                err.verify_message = closed.reason_phrase  # type: ignore[union-attr]
                raise err from exc
            raise
        transport = self.proto._transport  # noqa: SLF001
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
        self.proto.batch_reads()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._cm is not None:
            with contextlib.suppress(Exception):
                await self._cm.__aexit__(None, None, None)

    def _send(self, method: str, path: str, headers: dict[str, str] | None) -> tuple[int, _Stream]:
        assert self.proto is not None
        p = self.proto
        sid = p._quic.get_next_available_stream_id()  # noqa: SLF001
        st = _Stream()
        p.streams[sid] = st
        hs = [(b":method", method.encode()), (b":scheme", b"https"),
              (b":authority", f"{self.host}:{self.port}".encode()), (b":path", path.encode()),
              (b"user-agent", b"abrstack-h3")]
        hs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        p.http.send_headers(stream_id=sid, headers=hs, end_stream=True)
        p._transmit_soon()  # noqa: SLF001 - requests made together share packets
        return sid, st

    async def stream(self, path: str, headers: dict[str, str] | None = None, method: str = "GET",
                     on_headers: Callable[[int, dict[str, str]], None] | None = None
                     ) -> AsyncIterator[bytes]:
        """Send a request; call ``on_headers(status, headers)``; yield body chunks."""
        sid, st = self._send(method, path, headers)
        loop = asyncio.get_running_loop()
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
            assert self.proto is not None
            self.proto.streams.pop(sid, None)

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
