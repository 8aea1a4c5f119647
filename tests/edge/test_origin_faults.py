"""Origins that misbehave in ways the stand-in origin cannot: close-delimited bodies cut
short, malformed answers for one URL, trickling bodies. A raw asyncio origin (the outside
world) speaks HTTP/1.1 by hand."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

BODY = b"a" * 50_000


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        return
    path = head.split(b" ", 2)[1].decode()
    cc = b"Cache-Control: public, max-age=600\r\n"
    try:
        if path.startswith("/media/t/close"):  # close-delimited, cut short
            writer.write(b"HTTP/1.1 200 OK\r\n" + cc + b"Connection: close\r\n\r\n" + BODY[:20_000])
        elif path.startswith("/media/t/chunked"):
            writer.write(b"HTTP/1.1 200 OK\r\n" + cc + b"Transfer-Encoding: chunked\r\n\r\n"
                         + b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n")
        elif path.startswith("/media/t/garbage"):
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        elif path.startswith("/media/t/bad"):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nbad\n")
        elif path.startswith("/media/t/slow"):  # 1 byte a second
            writer.write(b"HTTP/1.1 200 OK\r\n" + cc + b"Content-Length: 1000\r\n\r\n")
            for _ in range(1000):
                await writer.drain()
                writer.write(b"s")
                await asyncio.sleep(1)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n" + cc + b"Content-Length: %d\r\n\r\n" % len(BODY)
                         + BODY)
        await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@contextmanager
def raw_origin() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    port: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            server = await asyncio.start_server(_answer, "127.0.0.1", 0)
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await stop.wait()
            server.close()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()

        loop.run_until_complete(main())
        loop.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    ready.wait(5)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        th.join(5)


def _breaker(edge: Any, url: str) -> str:
    return httpx.get(edge.http + "/healthz").json()["origins"][url]["breaker"]


def test_close_delimited_bodies_are_never_stored(edge_factory: Any) -> None:
    with raw_origin() as url, edge_factory([url], prefetch_k=0) as edge:
        for _ in range(2):
            r = httpx.get(edge.http + "/media/t/close.m4s")
            assert r.headers["x-cache"] == "MISS"  # the second one too: nothing was stored
        # chunked framing confirms the end: stored
        assert httpx.get(edge.http + "/media/t/chunked.m4s").content == BODY
        r = httpx.get(edge.http + "/media/t/chunked.m4s")
        assert r.headers["x-cache"] == "HIT" and r.content == BODY


def test_one_bad_url_does_not_open_the_breaker(edge_factory: Any) -> None:
    with raw_origin() as url, edge_factory([url], prefetch_k=0, retries=2) as edge:
        for _ in range(4):
            assert httpx.get(edge.http + "/media/t/bad.m4s").status_code == 400
            assert httpx.get(edge.http + "/media/t/garbage.m4s").status_code == 502
        assert _breaker(edge, url) == "closed"
        r = httpx.get(edge.http + "/media/t/ok.m4s")
        assert r.status_code == 200 and r.content == BODY


def test_a_trickling_origin_does_not_poison_later_misses(edge_factory: Any) -> None:
    with raw_origin() as url, edge_factory([url], prefetch_k=0, retries=0,
                                           fetch_deadline_s=1.5, connections_per_origin=8,
                                           pool_wait_s=0.3) as edge:
        async def crowd() -> list[int]:
            async with httpx.AsyncClient(timeout=0.5) as c:
                async def one(i: int) -> int:
                    try:
                        return (await c.get(edge.http + f"/media/t/slow-{i}.m4s")).status_code
                    except httpx.HTTPError:
                        return 0  # the client gave up and left

                return await asyncio.gather(*[one(i) for i in range(30)])

        statuses = asyncio.run(crowd())
        assert 503 in statuses  # past the 8 connections: the pool wait is bounded ...
        assert _breaker(edge, url) == "closed"  # ... and is not the origin's failure
        time.sleep(2.0)  # every trickling fetch has passed its deadline
        t0 = time.monotonic()
        r = httpx.get(edge.http + "/media/t/ok-after.m4s", timeout=5)
        assert r.status_code == 200 and r.content == BODY
        assert time.monotonic() - t0 < 1.0
        assert _breaker(edge, url) == "closed"
