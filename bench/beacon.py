"""Benchmark: `POST /beacon` on a real edge process (abr edge --redis) over HTTP/1.1.

Sequential requests on one keep-alive connection, against a baseline in the same run:

1. baseline: `GET /healthz` (the edge's cheapest answer);
2. beacons with Redis up: answer time p50/p99, then the time until every one is in the topic;
3. beacons with Redis stopped: answer time p50/p99 (the bus is not on the serving path), then
   Redis started again and the time until every beacon taken meanwhile is in the topic;
4. throughput: ``--concurrency`` clients (aiohttp, one process) posting beacons as fast as they
   are answered, against the same clients asking ``GET /healthz``; requests/s and the time
   until every beacon is in the topic.

    flock /tmp/abrstack-heavy.lock .venv/bin/python bench/beacon.py [--beacons 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402

from abrstack.beacons import QOE  # noqa: E402
from abrstack.redisproc import RedisServer  # noqa: E402
from abrstack.stack import running_edge_process, running_origin_process  # noqa: E402


def beacon(i: int, phase: str) -> bytes:
    return json.dumps({"session_id": f"{phase}-{i // 10}", "title": "bench", "abr": "bola",
                       "protocol": "h1", "seq": i % 10, "bitrate_bps": 1_000_000, "buffer_s": 8.0,
                       "stalls": 0, "stall_s": 0.0, "startup_s": 0.5, "switches": 1, "errors": 0,
                       "played_s": 4.0, "final": False}).encode()


def timed(client: httpx.Client, n: int, send) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        r = send(client, i)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code not in (200, 202):
            raise SystemExit(f"unexpected {r.status_code}: {r.text}")
    return out


def pct(xs: list[float], p: float) -> float:
    return statistics.quantiles(xs, n=100)[int(p) - 1] if len(xs) >= 2 else xs[0]


def wait_topic(url: str, n: int, timeout_s: float = 60) -> float:
    t0 = time.perf_counter()
    r = redis.Redis.from_url(url)
    while r.xlen(QOE) < n:
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit(f"only {r.xlen(QOE)} of {n} beacons reached the topic")
        time.sleep(0.01)
    return time.perf_counter() - t0


async def hammer(url: str, n: int, concurrency: int, body: bytes | None) -> float:
    """`n` requests from `concurrency` clients; requests per second."""
    import aiohttp

    left = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def one() -> None:
            for i in left:
                if body is None:
                    async with s.get(url) as r:
                        await r.read()
                else:
                    async with s.post(url, data=beacon(i, "tp"),
                                      headers={"content-type": "text/plain"}) as r:
                        await r.read()
                if r.status not in (200, 202):
                    raise SystemExit(f"unexpected {r.status}")
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beacons", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    opts = ap.parse_args()
    n = opts.beacons
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "media").mkdir()
        with RedisServer(work / "redis") as rs, \
                running_origin_process(work / "media", work) as (origin, _o), \
                running_edge_process(origin, work, "--redis", rs.url, "--access-log", "off") as (http, *_):
            url = f"{http}/beacon"
            headers = {"content-type": "text/plain;charset=UTF-8"}
            with httpx.Client() as c:
                timed(c, 200, lambda c, i: c.get(f"{http}/healthz"))  # warm up
                base = timed(c, n, lambda c, i: c.get(f"{http}/healthz"))
                t0 = time.perf_counter()
                up = timed(c, n, lambda c, i: c.post(url, content=beacon(i, "up"), headers=headers))
                sent_s = time.perf_counter() - t0
                in_topic_s = sent_s + wait_topic(rs.url, n)
                rs.stop()
                down = timed(c, n, lambda c, i: c.post(url, content=beacon(i, "down"), headers=headers))
                rs.start()
                back_s = wait_topic(rs.url, 2 * n)
                print(f"beacons: {n} per phase, sequential on one HTTP/1.1 connection; edge: 1 worker")
                for name, xs in (("GET /healthz (baseline)", base), ("POST /beacon, Redis up", up),
                                 ("POST /beacon, Redis stopped", down)):
                    print(f"  {name:28s} p50 {pct(xs, 50):6.3f} ms  p99 {pct(xs, 99):6.3f} ms  "
                          f"({pct(xs, 50) / pct(base, 50):.2f}x baseline p50)")
                print(f"  Redis up: {n} beacons answered in {sent_s:.2f} s, all in the topic after "
                      f"{in_topic_s:.2f} s ({n / in_topic_s:,.0f} beacons/s)")
                print(f"  Redis restarted: the {n} beacons taken while it was down were in the topic "
                      f"{back_s:.2f} s later; lost {2 * n - redis.Redis.from_url(rs.url).xlen(QOE)}")
            k, m = opts.concurrency, 5 * n
            hz = asyncio.run(hammer(f"{http}/healthz", m, k, None))
            t0 = time.perf_counter()
            bs = asyncio.run(hammer(url, m, k, b""))
            all_in = time.perf_counter() - t0 + wait_topic(rs.url, 2 * n + m)
            print(f"  {k} concurrent clients, {m} requests each run: GET /healthz {hz:,.0f}/s; "
                  f"POST /beacon {bs:,.0f}/s ({bs / hz:.2f}x); all {m} in the topic after {all_in:.2f} s")


if __name__ == "__main__":
    main()
