"""The edge over HTTP/1.1 (httpx, aiohttp, curl), HTTP/2 (httpx, curl) and HTTP/3
(the aioquic client), against the stand-in origin."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from typing import Any

import aiohttp
import httpx
import pytest

from edge.h3client import H3Client
from tests.edge.conftest import Obj

BODY = bytes(range(256)) * 4096  # 1 MiB
SEG = {"Cache-Control": "public, max-age=60", "ETag": '"v1"', "Content-Type": "video/mp4"}


def test_h1_h2_h3_serve_the_same_object_and_cache_it(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/media/t/360p/seg-00001.m4s"] = Obj(BODY, dict(SEG))
    with edge_factory([url], prefetch_k=0) as edge:
        r1 = httpx.get(edge.http + "/media/t/360p/seg-00001.m4s")
        assert r1.status_code == 200 and r1.content == BODY
        assert r1.headers["x-cache"] == "MISS"
        assert r1.headers["via"].endswith("abr-edge")
        with httpx.Client(http2=True, verify=str(edge.certfile)) as c:
            r2 = c.get(edge.https.replace("127.0.0.1", "localhost")
                       + "/media/t/360p/seg-00001.m4s")
        assert r2.http_version == "HTTP/2" and r2.content == BODY
        assert r2.headers["x-cache"] == "HIT"
        assert f'h3=":{edge.ports.port}"' in r2.headers["alt-svc"]

        async def h3() -> Any:
            async with H3Client("127.0.0.1", edge.ports.port, cafile=str(edge.certfile),
                                verify=True) as c:
                return await c.get("/media/t/360p/seg-00001.m4s")

        r3 = asyncio.run(h3())
        assert r3.status == 200 and r3.body == BODY and r3.headers["x-cache"] == "HIT"

        async def aio() -> tuple[int, bytes, str]:
            async with aiohttp.ClientSession() as s, s.get(
                    edge.http + "/media/t/360p/seg-00001.m4s?CMCD=bl%3D100") as r:
                return r.status, await r.read(), r.headers["X-Cache"]

        assert asyncio.run(aio()) == (200, BODY, "HIT")  # CMCD is not part of the key
        assert state.count("/media/t/360p/seg-00001.m4s") == 1

        metrics = httpx.get(edge.http + "/metrics").text
        for proto in ("h1", "h2", "h3"):
            assert f'protocol="{proto}"' in metrics
        assert "edge_hit_ratio" in metrics and "edge_origin_fetch_seconds_bucket" in metrics


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")
def test_curl_h1_and_h2(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/titles"] = Obj(b'["t"]', {"Cache-Control": "public, max-age=2",
                                               "Content-Type": "application/json"})
    with edge_factory([url]) as edge:
        out = subprocess.run(["curl", "-s", "-k", "--http2", "-o", "/dev/null", "-w",
                              "%{http_version} %{http_code}", edge.https + "/titles"],
                             capture_output=True, text=True, timeout=20).stdout
        assert out == "2 200"
        out = subprocess.run(["curl", "-s", "-D", "-", edge.http + "/titles"],
                             capture_output=True, text=True, timeout=20).stdout
        assert "HTTP/1.1 200" in out and "x-cache: hit" in out.lower() and out.endswith('["t"]')


def test_access_log_names_protocol(origin: Any, edge_factory: Any, caplog: Any) -> None:
    import logging

    state, url = origin
    state.objects["/x"] = Obj(b"x", {"Cache-Control": "max-age=5"})
    with edge_factory([url]) as edge:
        logger = logging.getLogger("abrstack.edge.access")
        logger.setLevel(logging.INFO)
        logger.propagate = True
        with caplog.at_level(logging.INFO, logger="abrstack.edge.access"):
            httpx.get(edge.http + "/x")
            with httpx.Client(http2=True, verify=False) as c:
                c.get(edge.https + "/x")
            for _ in range(100):  # the log line follows the response's last byte
                lines = [json.loads(r.getMessage()) for r in caplog.records
                         if r.name == "abrstack.edge.access"]
                if len(lines) >= 2:
                    break
                time.sleep(0.02)
        assert [(x["protocol"], x["cache"], x["status"]) for x in lines] == [
            ("h1", "MISS", 200), ("h2", "HIT", 200)]


def test_h2_many_concurrent_large_streams_on_one_connection(origin: Any, edge_factory: Any) -> None:
    """The batched DATA-frame path (edge.server.send_data_frames) under small client
    flow-control windows (httpx: 64 KiB) and many streams at once."""
    state, url = origin
    for i in range(4):
        state.objects[f"/big{i}"] = Obj(bytes([i]) * 3 + BODY, {"Cache-Control": "max-age=60"})

    async def run() -> list[tuple[str, bytes]]:
        async with httpx.AsyncClient(http2=True, verify=False) as c:
            rs = await asyncio.gather(*[c.get(f"{edge.https}/big{i % 4}") for i in range(12)])
            return [(r.http_version, r.content) for r in rs]

    with edge_factory([url]) as edge:
        for i in range(4):
            httpx.get(f"{edge.http}/big{i}")
        got = asyncio.run(run())
        assert all(v == "HTTP/2" for v, _ in got)
        assert [b for _, b in got] == [bytes([i % 4]) * 3 + BODY for i in range(12)]
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-sk", "--http2", f"{edge.https}/big1"],
                                 capture_output=True, timeout=20).stdout
            assert out == bytes([1]) * 3 + BODY


def test_stopping_does_not_wait_for_idle_keep_alive_connections(origin: Any,
                                                                edge_factory: Any) -> None:
    """A client holding an HTTP/2 and an HTTP/1.1 connection open (answering PINGs) does
    not keep a stopping edge from stopping (granian drains for at most DRAIN_S)."""
    from edge.server import DRAIN_S

    state, url = origin
    state.objects["/k"] = Obj(b"k", SEG)
    with httpx.Client(http2=True, verify=False) as h2, httpx.Client() as h1:
        edge = edge_factory([url])
        with edge as e:
            assert h2.get(e.https + "/k").http_version == "HTTP/2"
            assert h1.get(e.http + "/k").status_code == 200
            t0 = time.monotonic()
        assert time.monotonic() - t0 < DRAIN_S + 2.5
