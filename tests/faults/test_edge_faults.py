"""The real edge with faults injected between it and its origin, and between it and
its clients (tests/faults/proxy.py). What the edge must withstand is in the README's
table "What the services withstand"."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.edge.conftest import Obj
from tests.faults.proxy import Toxic, tcp_proxy, udp_proxy

SEG_CC = "public, max-age=31536000, immutable"
BODY = bytes(range(256)) * 2048  # 512 KiB


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_origin_cut_short_is_never_cached(origin: Any, edge_factory: Any) -> None:
    """limit_data between edge and origin: the body ends early (Content-Length says more)."""
    state, url = origin
    path = "/media/t/720p/seg-00001.m4s"
    state.objects[path] = Obj(BODY, {"Cache-Control": SEG_CC, "ETag": '"a"'})
    with tcp_proxy("127.0.0.1", _port(url), Toxic("limit_data", bytes=100_000)) as p, \
            edge_factory([f"http://{p.url_host}"], prefetch_k=0, retries=0) as edge:
        try:
            got = httpx.get(edge.http + path, timeout=10).content
        except httpx.HTTPError:
            got = b""
        assert got != BODY
        p.clear()
        r = httpx.get(edge.http + path, timeout=10)
        assert r.status_code == 200 and r.content == BODY
        assert r.headers["x-cache"].startswith("MISS")  # the cut copy was not stored
        assert httpx.get(edge.http + path, timeout=10).headers["x-cache"] == "HIT"


def test_origin_resets_give_502_then_recover(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    path = "/media/t/720p/seg-00002.m4s"
    state.objects[path] = Obj(BODY, {"Cache-Control": SEG_CC})
    with tcp_proxy("127.0.0.1", _port(url), Toxic("reset_peer", timeout_ms=0)) as p, \
            edge_factory([f"http://{p.url_host}"], prefetch_k=0, retries=1) as edge:
        r = httpx.get(edge.http + path, timeout=10)
        assert r.status_code == 502
        p.clear()
        deadline = time.monotonic() + 10  # the breaker may be open for a while: no longer
        while True:
            r = httpx.get(edge.http + path, timeout=10)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert r.status_code == 200 and r.content == BODY


def test_silent_origin_gives_504_within_the_read_timeout(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    path = "/media/t/master.m3u8"
    state.objects[path] = Obj(b"#EXTM3U\n", {"Cache-Control": "max-age=2"})
    with tcp_proxy("127.0.0.1", _port(url), Toxic("timeout", "downstream")) as p, \
            edge_factory([f"http://{p.url_host}"], prefetch_k=0, retries=0,
                         read_timeout_s=1.0) as edge:
        t0 = time.monotonic()
        r = httpx.get(edge.http + path, timeout=15)
        assert r.status_code == 504
        assert time.monotonic() - t0 < 5


def test_slow_clients_and_latency_between_player_and_edge(origin: Any, edge_factory: Any) -> None:
    """A client behind 100 ms of latency and a 2 MB/s link gets the whole object intact."""
    state, url = origin
    path = "/media/t/720p/seg-00003.m4s"
    state.objects[path] = Obj(BODY, {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=0) as edge, \
            tcp_proxy("127.0.0.1", edge.ports.http_port, Toxic("latency", latency_ms=100),
                      Toxic("bandwidth", rate_kbps=2000)) as p:
        t0 = time.monotonic()
        r = httpx.get(f"http://{p.url_host}{path}", timeout=20)
        assert r.status_code == 200 and r.content == BODY
        assert time.monotonic() - t0 >= 0.2  # 512 KiB at 2 MB/s, plus the latency


def test_h3_survives_loss_and_reordering(origin: Any, edge_factory: Any) -> None:
    """5% loss and 5% reordering each way between an HTTP/3 client and the edge."""
    import asyncio

    from edge.h3client import H3Client

    state, url = origin
    path = "/media/t/720p/seg-00004.m4s"
    state.objects[path] = Obj(BODY, {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=0) as edge, \
            udp_proxy("127.0.0.1", edge.ports.port,
                      Toxic("loss", "upstream", probability=0.05),
                      Toxic("loss", "downstream", probability=0.05),
                      Toxic("reorder", "downstream", probability=0.05, delay_ms=20)) as p:
        async def get() -> tuple[int, bytes]:
            async with H3Client("127.0.0.1", p.port) as client:
                r = await client.get(path)
            return r.status, r.body

        status, body = asyncio.run(asyncio.wait_for(get(), 60))
        assert status == 200 and body == BODY
        assert p.stats.datagrams_dropped > 0
