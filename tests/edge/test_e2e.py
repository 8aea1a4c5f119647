"""End to end through the real origin (``abr origin``) and the real ``abr edge`` command,
both as processes: all three protocols, the origin process stopped, two workers sharing
the disk cache."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from abrstack.stack import background
from edge.h3client import H3Client

ABR = [sys.executable, "-m", "abrstack"]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process(argv: list[str]) -> Any:
    return background(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


@contextmanager
def real_origin(media: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = _free_port()
    with process([*ABR, "origin", "--media", str(media), "--port", str(port)]) as p:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield p, url


@contextmanager
def edge_cli(origin_url: str, cache: Path, *extra: str) -> Iterator[tuple[int, int]]:
    argv = [*ABR, "edge", "--origin", origin_url, "--port", "0", "--http-port", "0",
            "--cache-dir", str(cache), "--access-log", "off", *extra]
    with process(argv) as p:
        assert p.stdout is not None
        line = p.stdout.readline()
        m = re.search(r"https://[\d.]+:(\d+).*?http://[\d.]+:(\d+)", line)
        assert m, line
        spki = p.stdout.readline()
        assert "SPKI sha256" in spki and re.search(r"[A-Za-z0-9+/]{43}=", spki)
        port, http_port = int(m.group(1)), int(m.group(2))
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield port, http_port


def test_real_origin_through_edge_on_h1_h2_h3_then_origin_stopped(tiny_title: Any,
                                                                   tmp_path: Path) -> None:
    title = tiny_title.name
    seg1 = f"/media/{title}/{_first_rendition(tiny_title.path)}/seg-00001.m4s"
    seg2 = seg1.replace("seg-00001", "seg-00002")
    on_disk = (tiny_title.path / seg1.split(f"/media/{title}/")[1]).read_bytes()
    with real_origin(tiny_title.media_dir) as (origin_proc, url), \
            edge_cli(url, tmp_path / "cache", "--prefetch", "0", "--retries", "0") as (port, hport):
        h1 = f"http://127.0.0.1:{hport}"
        r = httpx.get(h1 + f"/media/{title}/master.m3u8")
        assert r.status_code == 200 and r.headers["x-cache"] == "MISS"
        assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        r = httpx.get(h1 + seg1)
        assert (r.headers["x-cache"], r.content) == ("MISS", on_disk)
        with httpx.Client(http2=True, verify=False) as c:
            r = c.get(f"https://127.0.0.1:{port}{seg1}")
        assert r.http_version == "HTTP/2" and r.headers["x-cache"] == "HIT" and r.content == on_disk

        async def h3() -> Any:
            async with H3Client("127.0.0.1", port) as c:
                return await c.get(seg1)

        r3 = asyncio.run(h3())
        assert (r3.status, r3.headers["x-cache"], r3.body) == (200, "HIT", on_disk)
        assert httpx.get(h1 + "/titles").status_code == 200

        os.killpg(origin_proc.pid, signal.SIGTERM)  # the origin process stops
        origin_proc.wait(10)
        assert httpx.get(h1 + seg1).headers["x-cache"] == "HIT"  # immutable, still fresh
        codes = [httpx.get(h1 + seg2).status_code for _ in range(6)]
        assert codes == [502] * 6
        assert httpx.get(h1 + "/healthz").json()["origins"][url]["breaker"] == "open"


def test_two_workers_share_the_disk_cache(tiny_title: Any, tmp_path: Path) -> None:
    title = tiny_title.name
    seg1 = f"/media/{title}/{_first_rendition(tiny_title.path)}/seg-00001.m4s"
    with real_origin(tiny_title.media_dir) as (_, url), \
            edge_cli(url, tmp_path / "cache", "--workers", "2", "--prefetch", "0") as (_, hport):
        h1 = f"http://127.0.0.1:{hport}"
        assert httpx.get(h1 + seg1).headers["x-cache"] == "MISS"
        time.sleep(0.3)  # the disk write follows the response
        workers, results = set(), set()
        for _ in range(12):  # new connections: SO_REUSEPORT spreads them over both workers
            r = httpx.get(h1 + seg1)
            results.add(r.headers["x-cache"])
            workers.add(httpx.get(h1 + "/healthz").json()["worker"])
        assert results == {"HIT"}
        assert workers == {"0", "1"}
        time.sleep(1.5)  # each worker publishes its figures every second
        for _ in range(4):  # whichever worker answers, /metrics covers both
            text = httpx.get(h1 + "/metrics").text
            served = {w: sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                             if line.startswith("edge_requests_total{")
                             and f'worker="{w}"' in line and 'cache="' in line
                             and 'cache="NONE"' not in line)
                      for w in ("0", "1")}
            assert all(served.values()), served
            assert sum(served.values()) == 13, served  # the MISS and the 12 HITs


def _first_rendition(title_dir: Path) -> str:
    """The first rendition's folder inside the title: ``<version>/<rid>``."""
    import json

    meta = json.loads((title_dir / "title.json").read_text())
    return str(meta["renditions"][0]["init"]).rsplit("/", 1)[0]
