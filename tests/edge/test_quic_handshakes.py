"""QUIC handshake admission: garbage Initials keep no state, unfinished handshakes are
bounded per source and in total, Retry under load (RFC 9000 §8.1, §21.1.1)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from typing import Any

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from edge.h3client import H3Client
from edge.handshakes import Admit, HandshakeBudget, HandshakeLimits
from tests.edge.conftest import Obj

SEG_CC = "public, max-age=31536000, immutable"


def test_budget_bounds_per_source_total_and_retries_above_the_mark() -> None:
    b = HandshakeBudget(HandshakeLimits(max_total=4, max_per_source=2, retry_above=3,
                                        handshake_timeout_s=10))
    assert b.admit("a", False) is Admit.ACCEPT
    b.started(1, "a", 0.0)
    b.started(2, "a", 0.0)
    assert b.admit("a", True) is Admit.DROP  # 2 per source
    b.started(3, "b", 5.0)
    assert b.admit("c", False) is Admit.RETRY  # 3 pending: prove your address
    assert b.admit("c", True) is Admit.ACCEPT
    b.started(4, "c", 5.0)
    assert b.admit("d", True) is Admit.DROP  # 4 in total
    b.finished(2)
    assert b.admit("a", False) is Admit.RETRY and b.pending == 3
    assert sorted(b.expired(10.5)) == [1]  # 10 s old
    assert b.pending == 2 and b.admit("a", False) is Admit.ACCEPT


def _initials(n: int, garbage: bool) -> list[bytes]:
    out = []
    for _ in range(n):
        cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"])
        c = QuicConnection(configuration=cfg)
        c.connect(("127.0.0.1", 443), now=0.0)
        data = bytearray(c.datagrams_to_send(now=0.0)[0][0])
        if garbage:  # keep the long header, scramble the protected payload
            data[30:] = os.urandom(len(data) - 30)
        out.append(bytes(data))
    return out


def _quic_servers() -> list[Any]:
    return [o for o in gc.get_objects() if type(o).__name__ == "H3Server"]


def _pending_connections() -> int:
    return sum(len(s.open_connections()) for s in _quic_servers())


def _blast(port: int, datagrams: list[bytes]) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in datagrams:
        s.sendto(d, ("127.0.0.1", port))
    s.close()


def test_undecryptable_initials_keep_no_state(origin: Any, edge_factory: Any) -> None:
    _, url = origin
    with edge_factory([url], prefetch_k=0) as edge:
        before = _pending_connections()  # other tests' edges may still be in memory
        _blast(edge.ports.port, _initials(300, garbage=True))
        time.sleep(0.5)
        assert _pending_connections() == before


def test_real_initials_that_never_continue_are_bounded(origin: Any, edge_factory: Any) -> None:
    _, url = origin
    lim = HandshakeLimits(max_total=50, max_per_source=40, retry_above=1000)
    with edge_factory([url], prefetch_k=0, quic_handshakes=lim) as edge:
        before = _pending_connections()
        _blast(edge.ports.port, _initials(200, garbage=False))
        t_end = time.monotonic() + 5  # a loaded machine takes a while for 200 Initials
        while _pending_connections() - before < 40 and time.monotonic() < t_end:
            time.sleep(0.05)
        time.sleep(0.3)
        assert _pending_connections() - before == 40  # one source: its bound


def test_retry_under_load_still_serves_real_clients(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/media/t/b.m4s"] = Obj(b"y" * 5000, {"Cache-Control": SEG_CC})
    lim = HandshakeLimits(retry_above=0)  # always under load: every client is retried
    with edge_factory([url], prefetch_k=0, quic_handshakes=lim) as edge:
        before = _pending_connections()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(_initials(1, garbage=False)[0], ("127.0.0.1", edge.ports.port))
        answer = s.recv(2048)
        s.close()
        assert answer[0] & 0xF0 == 0xF0  # long header, packet type 3 = Retry (RFC 9000 §17.2.5)
        assert _pending_connections() == before

        async def get() -> tuple[int, bytes]:
            async with H3Client("127.0.0.1", edge.ports.port) as c:
                r = await c.get("/media/t/b.m4s")
                return r.status, r.body

        status, body = asyncio.run(asyncio.wait_for(get(), 20))
        assert status == 200 and body == b"y" * 5000
