"""A miss whose every client hung up is cancelled, so that a slow origin cannot pile up
fetches nobody waits for (issue 10.3); a fetch that someone still follows is not."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from tests.edge.conftest import Obj

SEG_CC = "public, max-age=31536000, immutable"


def wait_for(cond: Any, timeout_s: float = 5.0) -> bool:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def ask_and_leave(port: int, paths: list[str]) -> None:
    socks = []
    for p in paths:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    time.sleep(0.5)
    for s in socks:
        s.close()


def test_fetches_whose_clients_left_are_cancelled(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    paths = [f"/media/t/360p/seg-{n:05d}.m4s" for n in range(1, 31)]
    for p in paths:
        state.objects[p] = Obj(b"x" * 100, {"Cache-Control": SEG_CC})
    state.chunk_bytes, state.chunk_delay_s = 1, 1.0  # 1 byte/s
    with edge_factory([url], prefetch_k=0) as edge:
        ask_and_leave(edge.ports.http_port, paths)
        assert wait_for(lambda: state.active == 0), f"{state.active} origin fetches left running"
        assert not edge.app.inflight
        assert edge.app.metrics.abandoned.labels("0")._value.get() == 30  # noqa: SLF001
        state.chunk_delay_s = 0
        state.objects["/media/t/fast"] = Obj(b"y" * 1000, {"Cache-Control": SEG_CC})
        r = httpx.get(edge.http + "/media/t/fast", timeout=5)
        assert r.status_code == 200 and r.content == b"y" * 1000
        r = httpx.get(edge.http + paths[0], timeout=5)  # asked again: fetched again, whole
        assert r.status_code == 200 and r.content == b"x" * 100 and state.count(paths[0]) == 2


def test_a_fetch_someone_still_follows_goes_on(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    path = "/media/t/360p/seg-00001.m4s"
    state.objects[path] = Obj(b"z" * 20, {"Cache-Control": SEG_CC})
    state.chunk_bytes, state.chunk_delay_s = 4, 0.2
    with edge_factory([url], prefetch_k=0) as edge, httpx.Client(http2=True, verify=False) as h2:
        import threading

        got: list[httpx.Response] = []
        t = threading.Thread(target=lambda: got.append(h2.get(edge.https + path, timeout=10)))
        t.start()
        time.sleep(0.2)
        ask_and_leave(edge.ports.http_port, [path])  # a collapsed h1 reader hangs up
        t.join(10)
        assert got and got[0].status_code == 200 and got[0].content == b"z" * 20
        assert state.count(path) == 1
        assert edge.app.metrics.abandoned.labels("0")._value.get() == 0  # noqa: SLF001
        assert httpx.get(edge.http + path).headers["x-cache"] == "HIT"


def test_a_prefetch_is_not_cancelled_when_the_request_that_caused_it_leaves(
        origin: Any, edge_factory: Any) -> None:
    state, url = origin
    for n in (1, 2):
        state.objects[f"/media/t/360p/seg-{n:05d}.m4s"] = Obj(b"p" * 8, {"Cache-Control": SEG_CC})
    state.chunk_bytes, state.chunk_delay_s = 2, 0.2
    with edge_factory([url], prefetch_k=1) as edge:
        ask_and_leave(edge.ports.http_port, ["/media/t/360p/seg-00001.m4s"])
        assert wait_for(lambda: "/media/t/360p/seg-00002.m4s" in edge.app.store.memory.index)
        assert edge.app.metrics.abandoned.labels("0")._value.get() == 1  # noqa: SLF001
