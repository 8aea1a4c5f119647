"""Clients that stop reading: the edge holds a bounded part of the object for each, not a
copy of all of it (bodies go out in slices, with backpressure, on h1, h2 and h3), and a
response whose client takes nothing for ``send_timeout_s`` is cut.

Memory is read from this process's RSS (the edge runs in a thread here); each case is
sized so that a copy of the object per response would exceed its bound several times.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx

from tests.edge.conftest import Obj

MB8 = bytes(range(256)) * (8 * 4096)  # 8 MiB
SEG_CC = "public, max-age=31536000, immutable"
PATH = "/media/t/1080p/seg-00001.m4s"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def warm(edge: Any, state: Any) -> None:
    assert httpx.get(edge.http + PATH).content == MB8  # now a memory hit
    assert state.count(PATH) == 1


def stalled_h1(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    return socks


def test_h1_readers_that_never_read_hold_slices_and_are_cut(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects[PATH] = Obj(MB8, {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=0, send_timeout_s=1.5) as edge:
        warm(edge, state)
        base = rss_mib()
        socks = stalled_h1(edge.ports.http_port, 40)
        time.sleep(1.0)
        grown = rss_mib() - base
        assert grown < 80, f"40 stalled readers of 8 MiB grew the edge by {grown:.0f} MiB"
        time.sleep(1.5)  # past send_timeout_s: every one of them is cut
        got = 0
        s = socks[0]
        s.settimeout(5)
        while chunk := s.recv(1 << 20):
            got += len(chunk)
        assert 0 < got < len(MB8)  # the connection ended early (EOF), not a hang
        for s in socks:
            s.close()
        assert httpx.get(edge.http + PATH).content == MB8  # the edge still serves


def cut_count(edge: Any, reason: str) -> float:
    return edge.app.metrics.cut.labels(reason, "0")._value.get()  # noqa: SLF001


def _h2_connect(port: int) -> tuple[ssl.SSLSocket, h2.connection.H2Connection]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sock.sendall(conn.data_to_send())
    return sock, conn


def test_h2_streams_at_window_zero_hold_bounded_memory_and_their_connection_is_closed(
        origin: Any, edge_factory: Any) -> None:
    """One connection, 60 streams, window 0, PINGs answered (the h2 library acks them)."""
    state, url = origin
    state.objects[PATH] = Obj(MB8, {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=0, send_timeout_s=1.5) as edge:
        warm(edge, state)
        base = rss_mib()
        sock, conn = _h2_connect(edge.ports.port)
        for i in range(60):
            conn.send_headers(1 + 2 * i, [(":method", "GET"), (":scheme", "https"),
                                          (":authority", "localhost"), (":path", PATH)],
                              end_stream=True)
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.2)
        peak = 0.0
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end and not (cut_count(edge, "SlowReader")
                                                and edge.app._active == 0):
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = b""
            if data:
                conn.receive_data(data)
                sock.sendall(conn.data_to_send())  # PING and SETTINGS acks only, no window
            else:
                time.sleep(0.1)
            peak = max(peak, rss_mib() - base)
        # the edge closed the connection (edge/stalled.py): EOF or a reset, though the
        # client still answers everything
        closed = False
        t_end = time.monotonic() + 5
        while not closed and time.monotonic() < t_end:
            try:
                data = sock.recv(65536)
                closed = data == b""
                if data:
                    conn.receive_data(data)
                    sock.sendall(conn.data_to_send())
            except TimeoutError:
                pass
            except OSError:
                closed = True
        sock.close()
        assert peak < 60, f"60 streams at window 0 grew the edge by {peak:.0f} MiB"
        # the first responses cut after send_timeout_s closed the connection, which ended
        # the others
        assert cut_count(edge, "SlowReader") >= 1 and edge.app._active == 0
        assert closed, "the edge kept a connection whose streams made no progress"


def test_h3_client_that_stops_acking_holds_bounded_memory(origin: Any, edge_factory: Any) -> None:
    """20 streams collapse on one miss; the client goes silent (no ACKs): aioquic would
    buffer every follower's copy of the body without bound."""
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.quic.configuration import QuicConfiguration

    state, url = origin
    state.objects[PATH] = Obj(MB8, {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=0, send_timeout_s=2.0) as edge:
        base = rss_mib()

        async def go() -> float:
            cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                    verify_mode=ssl.CERT_NONE)
            class Quiet(QuicConnectionProtocol):
                def quic_event_received(self, event: Any) -> None:
                    pass  # the bodies are not read at all

            async with connect("127.0.0.1", edge.ports.port, configuration=cfg,
                               create_protocol=Quiet) as client:
                h3 = H3Connection(client._quic)  # noqa: SLF001
                for _ in range(20):
                    sid = client._quic.get_next_available_stream_id()  # noqa: SLF001
                    h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                          (b":authority", b"localhost"), (b":path", PATH.encode())],
                                    end_stream=True)
                client.transmit()
                await asyncio.sleep(0.3)
                client._transport.pause_reading()  # noqa: SLF001 - silent from now on: no ACKs
                peak = 0.0
                for _ in range(15):
                    await asyncio.sleep(0.1)
                    peak = max(peak, rss_mib() - base)
                client._transport.resume_reading()  # noqa: SLF001
                return peak

        peak = asyncio.run(go())
        assert peak < 60, f"20 unacknowledged h3 responses grew the edge by {peak:.0f} MiB"
        assert state.count(PATH) == 1
