"""Our HTTP/3 server: aioquic's sans-I/O QUIC and HTTP/3 state machines, driven on the
event loop (edge/quicio.py), serving an ASGI app (the edge's, edge/app.py).

    server = H3Server(app, H3Settings(certfile=..., keyfile=...), port=8443)
    server.listen(sockets)          # bound UDP sockets (edge/server.py binds them)
    ...
    await server.close()            # stop taking connections, let requests finish

One QUIC connection carries any number of requests, one bidirectional stream each; each
request is one ASGI ``http`` call (its own task):

- ``receive()``: the request body as ``http.request`` messages, then
  ``http.disconnect`` once the client reset the stream, stopped reading it
  (STOP_SENDING) or the connection closed.
- ``send()``: ``http.response.start`` and ``http.response.body`` become HEADERS and DATA
  frames, sent at the end of the loop iteration (headers, body and FIN share packets).
  Backpressure: a body ``send`` returns only once the response holds at most
  ``stream_buffer_bytes`` unacknowledged (aioquic itself buffers without bound), so a
  slow reader never makes the edge hold a whole object.
- A connection with no request open for ``keep_alive_s`` is closed (HTTP/3 NO_ERROR);
  one whose peer goes silent ends after the QUIC ``idle_timeout_s``; an unfinished
  handshake is given up and bounded (edge/handshakes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from typing import Any
from urllib.parse import unquote

from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    StopSendingReceived,
    StreamReset,
)
from aioquic.quic.packet import (
    PACKET_TYPE_INITIAL,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler

from edge import aioquic_compat
from edge.handshakes import Admit, HandshakeBudget, HandshakeLimits
from edge.quicio import Batch, DatagramSocket, QuicDriver

log = logging.getLogger("abrstack.edge.h3")

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_TRIM_THRESHOLD = 32 * 2**20
_SMALL_BODY = 64 * 1024
"""Request body bytes buffered for the app before the stream is refused."""


@dataclass(frozen=True)
class H3Settings:
    """How the HTTP/3 server runs."""

    certfile: str
    keyfile: str
    max_datagram_bytes: int = 1350
    """Largest datagram sent (≥ 1200; clamped to the peer's ``max_udp_payload_size``)."""
    stream_buffer_bytes: int = 1024 * 1024
    """Unacknowledged bytes one response may hold before the app's body ``send`` waits."""
    keep_alive_s: float = 5.0
    """A connection with no request open this long is closed."""
    idle_timeout_s: float = 30.0
    """QUIC idle timeout: a connection whose peer sends nothing this long ends."""
    max_data: int = 16 * 2**20
    """Connection flow-control window (the 1 MiB default stalls a 1 MB object)."""
    max_stream_data: int = 8 * 2**20
    handshakes: HandshakeLimits = field(default_factory=HandshakeLimits)
    alt_svc_port: int | None = None
    """Port announced in ``alt-svc`` on h3 responses (None: none)."""


class _Request:
    """One request stream: the ASGI ``receive``/``send`` pair and the task running the
    app."""

    __slots__ = ("conn", "stream_id", "body", "body_bytes", "ended", "gone", "readers",
                 "writer", "started", "finished", "task", "scope")

    def __init__(self, conn: _Connection, stream_id: int, scope: dict[str, Any]) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.scope = scope
        self.body: deque[bytes] = deque()
        self.body_bytes = 0
        self.ended = False  # the request body is complete
        self.gone = False  # reset, stopped or the connection closed
        self.readers: asyncio.Future[None] | None = None  # receive() waiting for data
        self.writer: asyncio.Future[None] | None = None  # send() waiting for room
        self.started = False
        self.finished = False
        self.task: asyncio.Task[None] | None = None

    def wake_reader(self) -> None:
        w, self.readers = self.readers, None
        if w is not None and not w.done():
            w.set_result(None)

    def wake_writer(self) -> None:
        w, self.writer = self.writer, None
        if w is not None and not w.done():
            w.set_result(None)

    def disconnect(self) -> None:
        self.gone = True
        self.wake_reader()
        self.wake_writer()

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.body or (self.ended and self.body_bytes >= 0):
                data = b"".join(self.body)
                self.body.clear()
                more = not self.ended
                if not more:
                    self.body_bytes = -1  # the last http.request was given
                return {"type": "http.request", "body": data, "more_body": more}
            if self.gone:
                return {"type": "http.disconnect"}
            if self.readers is None:
                self.readers = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.readers)

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone or self.finished:
            return
        kind = message["type"]
        conn = self.conn
        if kind == "http.response.start":
            self.started = True
            headers = [(b":status", b"%d" % message["status"])]
            headers += [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            conn.h3.send_headers(self.stream_id, headers + conn.server.response_headers())
            conn.schedule()
        elif kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if data or not more:
                conn.h3.send_data(self.stream_id, data, end_stream=not more)
                conn.schedule()
            if not more:
                self.finished = True
                return
            limit = conn.server.settings.stream_buffer_bytes
            while not self.gone and not conn.closed:
                held = aioquic_compat.unacked_bytes(conn.quic, self.stream_id)
                if held is None or held <= limit:
                    return
                self.writer = asyncio.get_running_loop().create_future()
                await self.writer

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:  # noqa: BLE001 - one request's failure, not the connection's
            log.exception("h3 request failed")
            if not self.started and not self.gone:
                await self.send({"type": "http.response.start", "status": 500,
                                 "headers": [(b"content-length", b"0")]})
                await self.send({"type": "http.response.body", "body": b""})
        finally:
            if not self.finished and not self.gone and not self.conn.closed:
                with contextlib.suppress(Exception):  # the app ended without a body end
                    self.conn.quic.reset_stream(self.stream_id, ErrorCode.H3_INTERNAL_ERROR)
                    self.conn.schedule()
            self.conn.request_done(self)


class _Connection(QuicDriver):
    """One QUIC connection of the server and its open requests."""

    def __init__(self, server: H3Server, quic: QuicConnection, endpoint: DatagramSocket,
                 address: Any, source: str) -> None:
        super().__init__(quic, endpoint)
        self.server = server
        self.address = address
        self.source = source
        self.h3: H3Connection = None  # type: ignore[assignment]  # on ProtocolNegotiated
        self.cids: set[bytes] = set()
        self.requests: dict[int, _Request] = {}
        self.handshaking = True
        self.keep_alive: asyncio.TimerHandle | None = None
        self._arm_keep_alive()

    def handle_events(self) -> None:
        quic, server = self.quic, self.server
        event = quic.next_event()
        while event is not None:
            if isinstance(event, ProtocolNegotiated):
                self.h3 = H3Connection(quic)
            elif isinstance(event, HandshakeCompleted):
                server.handshake_over(self)
            elif isinstance(event, ConnectionIdIssued):
                self.cids.add(event.connection_id)
                server.connections[event.connection_id] = self
            elif isinstance(event, ConnectionIdRetired):
                self.cids.discard(event.connection_id)
                server.connections.pop(event.connection_id, None)
            elif isinstance(event, ConnectionTerminated):
                self.terminated()
                return
            elif isinstance(event, (StreamReset, StopSendingReceived)):
                req = self.requests.get(event.stream_id)
                if req is not None:
                    req.disconnect()
            if self.h3 is not None:
                for h3_event in self.h3.handle_event(event):
                    self._h3_event(h3_event)
            event = quic.next_event()

    def _h3_event(self, event: Any) -> None:
        if type(event) is DataReceived:
            req = self.requests.get(event.stream_id)
            if req is None:
                return
            if event.data:
                req.body.append(event.data)
                req.body_bytes += len(event.data)
                if req.body_bytes > _SMALL_BODY:  # the edge takes small bodies only
                    self.quic.stop_stream(event.stream_id, ErrorCode.H3_REQUEST_REJECTED)
                    self.quic.reset_stream(event.stream_id, ErrorCode.H3_REQUEST_REJECTED)
                    req.disconnect()
                    return
            if event.stream_ended:
                req.ended = True
            req.wake_reader()
        elif type(event) is HeadersReceived and event.stream_id not in self.requests:
            if self.server.stopping:
                self.quic.reset_stream(event.stream_id, ErrorCode.H3_REQUEST_REJECTED)
                return
            req = _Request(self, event.stream_id, self._scope(event.headers))
            req.ended = event.stream_ended
            self.requests[event.stream_id] = req
            self.disarm_keep_alive()
            req.task = self.loop.create_task(req.run(self.server.app))

    def _scope(self, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        method = path = authority = b""
        scheme = b"https"
        plain: list[tuple[bytes, bytes]] = []
        for k, v in headers:
            if k[:1] != b":":
                plain.append((k, v))
            elif k == b":method":
                method = v
            elif k == b":path":
                path = v
            elif k == b":authority":
                authority = v
            elif k == b":scheme":
                scheme = v
        if authority and not any(k == b"host" for k, _ in plain):
            plain.insert(0, (b"host", authority))
        raw_path, _, query = path.partition(b"?")
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "3", "method": method.decode("ascii"),
                "scheme": scheme.decode("ascii"),
                "path": unquote(raw_path.decode("ascii", "replace")), "raw_path": raw_path,
                "query_string": query, "root_path": "", "headers": plain,
                "client": self.address[:2], "server": self.server.address,
                "extensions": {}}

    def after_transmit(self) -> None:
        for req in self.requests.values():
            if req.writer is not None:
                req.wake_writer()

    def request_done(self, req: _Request) -> None:
        self.requests.pop(req.stream_id, None)
        if not self.requests and not self.closed:
            self._arm_keep_alive()
            if self.server.stopping:
                self.close()

    def _arm_keep_alive(self) -> None:
        self.disarm_keep_alive()
        self.keep_alive = self.loop.call_later(self.server.settings.keep_alive_s,
                                               self._keep_alive_over)

    def disarm_keep_alive(self) -> None:
        if self.keep_alive is not None:
            self.keep_alive.cancel()
            self.keep_alive = None

    def _keep_alive_over(self) -> None:
        self.keep_alive = None
        if not self.requests:
            self.close()

    def close(self) -> None:
        """Close with HTTP/3 NO_ERROR (the requests are over, or stopping)."""
        if not self.closed:
            self.quic.close(error_code=ErrorCode.H3_NO_ERROR)
            self.transmit()
            self.handle_events()

    def terminated(self) -> None:
        """The QUIC connection ended (closed, timed out or given up)."""
        if self.closed:
            return
        self.stop_timer()
        self.disarm_keep_alive()
        for req in list(self.requests.values()):
            req.disconnect()
        self.server.forget(self)


class H3Server:
    """HTTP/3 on UDP sockets, serving ``app`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: H3Settings) -> None:
        aioquic_compat.apply()
        _keep_freed_heap()
        self.app = app
        self.settings = settings
        cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        cfg.load_cert_chain(settings.certfile, settings.keyfile)
        cfg.max_datagram_size = settings.max_datagram_bytes
        cfg.max_data = settings.max_data
        cfg.max_stream_data = settings.max_stream_data
        cfg.idle_timeout = settings.idle_timeout_s
        self.config = cfg
        self.connections: dict[bytes, _Connection] = {}
        self.budget = HandshakeBudget(settings.handshakes)
        self.handshaking: dict[int, _Connection] = {}
        self.retry = QuicRetryTokenHandler()
        self.endpoints: list[DatagramSocket] = []
        self.address: tuple[str, int] | None = None
        self.stopping = False
        self._dated: tuple[int, list[tuple[bytes, bytes]]] = (0, [])

    def listen(self, socks: list[socket.socket]) -> None:
        for sock in socks:
            endpoint = DatagramSocket(sock, lambda batch: None)
            endpoint.on_batch = partial(self.received, endpoint)
            self.endpoints.append(endpoint)
            if self.address is None:
                self.address = sock.getsockname()[:2]

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """``date`` (built once a second) and ``alt-svc``."""
        now = int(time.time())
        if self._dated[0] != now:
            hs = [(b"date", formatdate(now, usegmt=True).encode())]
            if self.settings.alt_svc_port:
                hs.append((b"alt-svc", b'h3=":%d"; ma=3600' % self.settings.alt_svc_port))
            self._dated = (now, hs)
        return self._dated[1]

    def received(self, endpoint: DatagramSocket, batch: Batch) -> None:
        """A batch of datagrams: each to its connection, then one send per connection."""
        touched: dict[int, tuple[_Connection, Batch]] = {}
        for data, address in batch:
            try:
                header = pull_quic_header(Buffer(data=data), host_cid_length=8)
            except ValueError:
                continue
            conn = self.connections.get(header.destination_cid)
            if conn is None:
                if header.version is not None \
                        and header.version not in self.config.supported_versions:
                    endpoint.send([(encode_quic_version_negotiation(
                        source_cid=header.destination_cid, destination_cid=header.source_cid,
                        supported_versions=self.config.supported_versions), address)])
                elif header.packet_type == PACKET_TYPE_INITIAL and len(data) >= 1200 \
                        and not self.stopping:
                    self._open(endpoint, data, address, header)
                continue
            got = touched.get(id(conn))
            if got is None:
                touched[id(conn)] = (conn, [(data, address)])
            else:
                got[1].append((data, address))
        for conn, items in touched.values():
            if not conn.closed:
                conn.received(items)

    def _open(self, endpoint: DatagramSocket, data: bytes, address: Any, header: Any) -> None:
        """A new connection's Initial: admitted (edge/handshakes.py), and kept only if it
        decrypts and gets an answer."""
        now = endpoint.loop.time()
        for key in self.budget.expired(now):
            conn = self.handshaking.pop(key, None)
            if conn is not None:
                conn.terminated()
        source = str(address[0])
        original_cid, retry_cid, valid_token = header.destination_cid, None, False
        if header.token:
            try:
                original_cid = self.retry.validate_token(
                    address=address, destination_cid=header.destination_cid,
                    token=header.token, now=now)
                retry_cid, valid_token = header.destination_cid, True
            except ValueError:
                return  # a forged or expired token: no state, no answer
        verdict = self.budget.admit(source, valid_token)
        if verdict is Admit.DROP:
            return
        if verdict is Admit.RETRY:
            source_cid = os.urandom(8)
            endpoint.send([(encode_quic_retry(
                version=header.version, source_cid=source_cid,
                destination_cid=header.source_cid,
                original_destination_cid=header.destination_cid,
                retry_token=self.retry.create_token(
                    address=address, original_destination_connection_id=header.destination_cid,
                    retry_source_connection_id=source_cid, now=now)), address)])
            return
        quic = QuicConnection(configuration=self.config,
                              original_destination_connection_id=original_cid,
                              retry_source_connection_id=retry_cid)
        quic.receive_datagram(data, address, now=now)
        first = quic.datagrams_to_send(now=now)
        if not first:
            return  # did not decrypt (or said nothing we answer): keep nothing
        conn = _Connection(self, quic, endpoint, address, source)
        conn.cids = {header.destination_cid, quic.host_cid}
        for cid in conn.cids:
            self.connections[cid] = conn
        self.budget.started(id(conn), source, now)
        self.handshaking[id(conn)] = conn
        endpoint.send(first)
        conn.handle_events()
        conn.transmit()

    def handshake_over(self, conn: _Connection) -> None:
        if conn.handshaking:
            conn.handshaking = False
            self.budget.finished(id(conn))
            self.handshaking.pop(id(conn), None)

    def forget(self, conn: _Connection) -> None:
        """Drop a connection's state (ended or given up)."""
        self.handshake_over(conn)
        conn.stop_timer()
        conn.disarm_keep_alive()
        for cid in conn.cids:
            if self.connections.get(cid) is conn:
                del self.connections[cid]
        conn.cids = set()

    def open_connections(self) -> list[_Connection]:
        return list({id(c): c for c in self.connections.values()}.values())

    async def close(self, grace_s: float = 2.0) -> None:
        """Take no new connection or request; close idle connections at once and the
        others when their requests end (at most ``grace_s``); then the sockets."""
        self.stopping = True
        for conn in self.open_connections():
            if not conn.requests:
                conn.close()
        end = asyncio.get_running_loop().time() + grace_s
        while any(c.requests for c in self.open_connections()) \
                and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.02)
        for conn in self.open_connections():
            for req in list(conn.requests.values()):
                if req.task is not None:
                    req.task.cancel()
            conn.close()
            conn.terminated()
        await asyncio.sleep(0)
        for endpoint in self.endpoints:
            endpoint.close()


def _keep_freed_heap() -> None:
    """glibc returns the top of the heap to the kernel once 128 KiB of it is free, so
    every burst of packets (built, encrypted, sent, freed) faulted its pages in again:
    one page fault per 4 KiB sent (~15% of the worker's CPU at 65000-byte datagrams).
    Keep up to 32 MiB of freed heap (M_TRIM_THRESHOLD). glibc only; a no-op elsewhere."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if hasattr(libc, "gnu_get_libc_version"):
            m_trim_threshold = -1
            libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD)
