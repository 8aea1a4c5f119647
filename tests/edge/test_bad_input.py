"""Hostile and broken clients get a clean 4xx or a closed connection, and the edge keeps
serving everyone else."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

from tests.edge.conftest import Obj


def raw(port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and b"content-length: 0" in out.lower():
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return out


@pytest.mark.parametrize("path", [
    b"/media/../etc/passwd", b"/media/%2e%2e/%2e%2e/etc/passwd", b"/media/.tmp-x/title.json",
    b"/media/t/%00x", b"/a\\..\\b"])
def test_hostile_paths_get_400(origin: Any, edge_factory: Any, path: bytes) -> None:
    state, url = origin
    with edge_factory([url]) as edge:
        out = raw(edge.ports.http_port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400")
        assert state.fetches == {}


def test_malformed_oversized_and_slow_clients(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/ok"] = Obj(b"fine", {"Cache-Control": "max-age=60"})
    with edge_factory([url], header_timeout_s=0.5) as edge:
        port = edge.ports.http_port
        out = raw(port, b"BLAH\x00\x01 nonsense\r\n\r\n")
        assert out == b"" or out.startswith(b"HTTP/1.1 400")
        big = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        out = raw(port, big)
        assert out == b"" or out[9:10] == b"4"
        out = raw(port, b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 405")
        # a slowloris: half a request head, then silence; closed after the header timeout
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        assert httpx.get(edge.http + "/ok").content == b"fine"  # others are served meanwhile
        slow.settimeout(5)
        assert slow.recv(100) == b""  # closed without a response
        assert time.monotonic() - t0 < 3
        slow.close()
        assert httpx.get(edge.http + "/ok").status_code == 200


def test_slow_tls_clients_are_closed(origin: Any, edge_factory: Any) -> None:
    """Over TLS: a half request head (h1) and an h2 connection that goes silent after
    its preface (PINGs unanswered) are closed after the header timeout."""
    import ssl

    state, url = origin
    state.objects["/ok"] = Obj(b"fine", {"Cache-Control": "max-age=60"})
    with edge_factory([url], header_timeout_s=0.5) as edge:

        def tls(alpn: str) -> ssl.SSLSocket:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            ctx.set_alpn_protocols([alpn])
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", edge.ports.port)),
                                server_hostname="localhost")
            assert s.selected_alpn_protocol() == alpn
            s.settimeout(10)
            return s

        def closed_after(s: ssl.SSLSocket) -> float:
            t0 = time.monotonic()
            while s.recv(65536):
                pass
            return time.monotonic() - t0

        h1 = tls("http/1.1")
        h1.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        h2 = tls("h2")
        h2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        with httpx.Client(http2=True, verify=False) as c:  # others are served meanwhile
            r = c.get(edge.https + "/ok")
            assert (r.http_version, r.content) == ("HTTP/2", b"fine")
        assert closed_after(h1) < 5
        assert closed_after(h2) < 5
        h1.close()
        h2.close()
