"""A thin HTTP/2 client for the player: one TLS connection, the ``h2`` state machine, asyncio.

httpx spends most of a player's CPU per byte on its layers (anyio locks, per-chunk
coroutines, header models): ``bench/clients.py`` measured 22 CPU-ms per MiB against
aiohttp's 1 for HTTP/1.1, and ``bench/load.py`` found the h2 players, not the edge, to be
the limit at 200 sessions. This client keeps only what a player needs: GET (and HEAD)
requests on one connection, the response head, the body handed over chunk by chunk, a
stream reset when the reader stops (abandonment), and reconnection after a failure.

Framing, HPACK and flow control are `h2`'s (hyper-h2, through its public API).
Backpressure is the stream's flow-control window: the server may send at most
``STREAM_WINDOW`` bytes that the reader has not taken, so a shaped reader never buffers
more than that per stream. The connection window is large so that a stream left
unconsumed (or reset) never blocks the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from player_sim import hyperframe_compat

STREAM_WINDOW = 1 << 20
"""Bytes a stream may have in flight beyond what the reader took (1 MiB)."""
CONNECTION_WINDOW = 1 << 24
MAX_HEADER_BYTES = 64 << 10
MAX_FRAME = 256 << 10
"""Largest DATA frame the server may send: fewer, larger frames cost less CPU per byte."""


class H2Failure(ConnectionError):
    """The connection or stream failed (reset, GOAWAY, protocol error, closed)."""


class _Stream:
    __slots__ = ("chunks", "ended", "error", "head", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head: asyncio.Future[tuple[int, dict[str, str]]] = loop.create_future()
        self.chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self.ended = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if self.error is None and not self.ended:
            self.error = exc
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()      # retrieved here; the reader sees it again
        self.wake()


class _Protocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.usable = True
        self.lost: BaseException | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.initiate_connection()
        self.conn.update_settings({
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_BYTES,
        })
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail_all(H2Failure(f"HTTP/2 protocol error from the server: {exc}"))
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            self._event(ev)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(H2Failure(f"the connection closed ({exc or 'by the server'})"))

    # h2 events
    def _event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.ResponseReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None and not st.head.done():
                headers = {bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
                           for k, v in ev.headers or ()}
                try:
                    status = int(headers.pop(":status", ""))
                except ValueError:
                    st.fail(H2Failure("the response has no valid :status"))
                    return
                st.head.set_result((status, headers))
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None and ev.data is not None:
                st.chunks.append((ev.data, ev.flow_controlled_length or 0))
                st.wake()
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.ended = True
                if not st.head.done():
                    st.fail(H2Failure("the stream ended without a response"))
                st.wake()
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.pop(ev.stream_id, None)
            if st is not None:
                st.fail(H2Failure(f"the server reset the stream (error {ev.error_code})"))
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.usable = False
            last = ev.last_stream_id or 0
            for sid, st in list(self.streams.items()):
                if sid > last:
                    st.fail(H2Failure(f"GOAWAY before the stream was processed "
                                      f"(error {ev.error_code})"))

    def _fail_all(self, exc: BaseException) -> None:
        self.usable = False
        self.lost = exc
        for st in self.streams.values():
            st.fail(exc)

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # used by the client
    def open(self, headers: list[tuple[str, str]]) -> tuple[int, _Stream]:
        if not self.usable:
            raise H2Failure("the connection is closing")
        sid = self.conn.get_next_available_stream_id()
        st = _Stream(self.loop)
        self.streams[sid] = st
        self.conn.send_headers(sid, headers, end_stream=True)
        self.flush()
        return sid, st

    def consumed(self, sid: int, n: int) -> None:
        if n and sid in self.streams:
            with contextlib.suppress(h2.exceptions.StreamClosedError, KeyError):
                self.conn.acknowledge_received_data(n, sid)
            self.flush()

    def finish(self, sid: int, st: _Stream) -> None:
        """Forget a stream; reset it first if the server is still sending it."""
        self.streams.pop(sid, None)
        left = sum(n for _, n in st.chunks)
        st.chunks.clear()
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            if left:
                self.conn.acknowledge_received_data(left, sid)
            if not st.ended and st.error is None:
                self.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        self.flush()


class H2Connection:
    """One HTTP/2 connection to ``host:port`` over TLS (ALPN ``h2``)."""

    def __init__(self, ctx: ssl.SSLContext, connect_timeout_s: float, read_timeout_s: float) -> None:
        hyperframe_compat.apply()
        self._ctx = ctx
        self._connect_s, self._read_s = connect_timeout_s, read_timeout_s
        self._proto: _Protocol | None = None
        self._key: tuple[str, int] | None = None

    async def _get(self, host: str, port: int) -> _Protocol:
        p = self._proto
        if p is not None and p.usable and self._key == (host, port):
            return p
        await self.close()
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(loop), host, port, ssl=self._ctx,
                                   server_hostname=host), self._connect_s)
        assert proto.transport is not None
        sslobj = proto.transport.get_extra_info("ssl_object")
        alpn = sslobj.selected_alpn_protocol() if sslobj is not None else None
        if alpn != "h2":
            proto.transport.close()
            raise H2Failure(f"{host}:{port} did not negotiate HTTP/2 (ALPN {alpn!r})")
        self._proto, self._key = proto, (host, port)
        return proto

    async def request(self, method: str, url: str, headers: dict[str, str]
                      ) -> tuple[int, dict[str, str], _Body]:
        """Send a request; returns status, headers (lower-case names) and the body reader."""
        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 443
        authority = u.netloc.rsplit("@", 1)[-1]
        proto = await self._get(host, port)
        hdrs = [(":method", method), (":scheme", "https"), (":authority", authority),
                (":path", (u.path or "/") + (f"?{u.query}" if u.query else ""))]
        hdrs += [(k.lower(), v) for k, v in headers.items()
                 if k.lower() not in ("host", "connection", "keep-alive", "transfer-encoding")]
        sid, st = proto.open(hdrs)
        body = _Body(proto, sid, st, self._read_s)
        try:
            status, head = await asyncio.wait_for(asyncio.shield(st.head), self._read_s)
        except BaseException:
            body.close()
            raise
        return status, head, body

    async def close(self) -> None:
        p, self._proto = self._proto, None
        if p is not None and p.transport is not None:
            with contextlib.suppress(Exception):
                if p.usable:
                    p.conn.close_connection()
                    p.flush()
                p.transport.close()


class _Body:
    """The body of one response, read chunk by chunk (``async for``)."""

    def __init__(self, proto: _Protocol, sid: int, st: _Stream, read_s: float) -> None:
        self._proto, self._sid, self._st, self._read_s = proto, sid, st, read_s
        self._closed = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        st = self._st
        while not st.chunks:
            if st.error is not None:
                raise st.error
            if st.ended or self._closed:
                self.close()
                raise StopAsyncIteration
            st.waiter = self._proto.loop.create_future()
            try:
                await asyncio.wait_for(st.waiter, self._read_s)
            finally:
                st.waiter = None
        data, n = st.chunks.popleft()
        self._proto.consumed(self._sid, n)
        return data

    def close(self) -> None:
        """Stop reading: the stream is reset if the server is still sending it."""
        if not self._closed:
            self._closed = True
            self._proto.finish(self._sid, self._st)


def tls_context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    return ctx
