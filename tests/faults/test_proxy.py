"""The fault proxies themselves: each toxic does what it says, on real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.faults.proxy import Toxic, tcp_proxy, udp_proxy


@contextmanager
def tcp_server(payload: bytes) -> Iterator[int]:
    """Answers every connection's first bytes with ``payload``, then closes."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(1024)
                    conn.sendall(payload)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield port
    finally:
        stop.set()
        t.join(5)
        srv.close()


def fetch(port: int, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(b"hello")
        out = b""
        while True:
            got = c.recv(65536)
            if not got:
                return out
            out += got


def test_clean_proxy_passes_everything() -> None:
    body = bytes(range(256)) * 4000
    with tcp_server(body) as port, tcp_proxy("127.0.0.1", port) as p:
        assert fetch(p.port) == body
        assert p.stats.connections == 1 and p.stats.bytes_down == len(body)


def test_latency_delays_and_limit_data_truncates() -> None:
    body = b"x" * 100_000
    with tcp_server(body) as port:
        with tcp_proxy("127.0.0.1", port, Toxic("latency", latency_ms=300)) as p:
            t0 = time.monotonic()
            assert fetch(p.port) == body
            assert time.monotonic() - t0 >= 0.3
        with tcp_proxy("127.0.0.1", port, Toxic("limit_data", bytes=1000)) as p:
            assert fetch(p.port) == body[:1000]


def test_bandwidth_bounds_the_rate() -> None:
    body = b"y" * 200_000
    with tcp_server(body) as port, tcp_proxy("127.0.0.1", port,
                                             Toxic("bandwidth", rate_kbps=400)) as p:
        t0 = time.monotonic()
        assert fetch(p.port) == body
        assert time.monotonic() - t0 >= 0.4  # 200 KB at 400 KB/s: 0.5 s


def test_reset_peer_and_timeout() -> None:
    with tcp_server(b"z" * 10) as port:
        with tcp_proxy("127.0.0.1", port, Toxic("timeout", timeout_ms=300)) as p:
            t0 = time.monotonic()
            try:  # nothing passes, then closed (a reset if our unread bytes were pending)
                got = fetch(p.port)
            except ConnectionResetError:
                got = b""
            assert got == b""
            assert 0.25 <= time.monotonic() - t0 < 5
        with tcp_proxy("127.0.0.1", port, Toxic("reset_peer", timeout_ms=0)) as p, \
                socket.create_connection(p.address, timeout=5) as c:
            time.sleep(0.2)
            with pytest.raises(ConnectionResetError):
                c.sendall(b"hello")
                c.recv(10)
                c.sendall(b"again")
                c.recv(10)


def test_udp_loss_and_reorder_are_seeded_and_counted() -> None:
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        echo.settimeout(0.1)
        while not stop.is_set():
            try:
                data, addr = echo.recvfrom(2048)
            except OSError:
                continue
            echo.sendto(data, addr)

    threading.Thread(target=serve, daemon=True).start()
    try:
        with udp_proxy(*echo.getsockname(), Toxic("loss", "upstream", probability=0.3),
                       Toxic("reorder", "downstream", probability=0.2, delay_ms=50)) as p:
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.settimeout(0.5)
            for i in range(200):
                c.sendto(i.to_bytes(2, "big"), p.address)
                time.sleep(0.002)
            got = []
            with pytest.raises(TimeoutError):
                while True:
                    got.append(int.from_bytes(c.recv(16), "big"))
            c.close()
            assert 100 < len(got) < 180  # ~30% lost on the way up
            assert got != sorted(got)  # some overtaken on the way back
            assert p.stats.datagrams_dropped == 200 - len(got)
            assert p.stats.datagrams_reordered > 0
    finally:
        stop.set()
        echo.close()


def test_unknown_toxic_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown toxic 'lag'"):
        Toxic("lag")
