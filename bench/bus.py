"""Benchmark: the event bus (abrstack/bus.py) over a private redis-server.

1. throughput: N events through one topic and one consumer group (pipelined publish in
   batches, one consumer polling batches and acking them);
2. latency: events published one at a time at a steady rate; publish→handled p50/p99;
3. crash: 10,000 events; a consumer *process* is SIGKILLed in the middle, another one (same
   group) reclaims what it held after the visibility timeout; lost / duplicated deliveries /
   effects applied once (the handler is idempotent by event id: SADD to a set in Redis).

Goals (issue 12): ≥ 20,000 events/s, p50 ≤ 5 ms, 0 lost.

    flock /tmp/abrstack-heavy.lock .venv/bin/python bench/bus.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from abrstack.bus import Consumer, Event, Publisher, connect  # noqa: E402
from abrstack.redisproc import RedisServer  # noqa: E402


async def throughput(url: str, n: int, batch: int) -> float:
    r = connect(url)
    c = Consumer(r, "bench.tp", "g", "c1", batch=batch, block_s=0.05)
    await c.ensure_group()
    pub = Publisher(connect(url), maxlen=max(n, 100_000))
    got = 0
    t0 = time.perf_counter()

    async def produce() -> None:
        for i in range(0, n, batch):
            await pub.publish_many("bench.tp", [Event("bench", {"i": j})
                                                for j in range(i, min(n, i + batch))])

    prod = asyncio.create_task(produce())
    ds: list[Any] = []
    while got < n:
        ds = await c.poll(ack=ds)  # the last batch's XACK rides with this XREADGROUP
        got += len(ds)
    await c.ack(*ds)
    await prod
    dt = time.perf_counter() - t0
    await r.aclose()
    await pub.client.aclose()
    return n / dt


async def raw_throughput(url: str, n: int, batch: int) -> float:
    """The baseline: the same flow in bare redis-py (pipelined XADD of the same JSON bodies,
    XREADGROUP COUNT batch, one XACK per batch), without our envelope, checks or outbox."""
    r, p = connect(url), connect(url)
    await r.xgroup_create("bench.raw", "g", id="0", mkstream=True)
    got = 0
    t0 = time.perf_counter()

    async def produce() -> None:
        for i in range(0, n, batch):
            pipe = p.pipeline(transaction=False)
            for j in range(i, min(n, i + batch)):
                pipe.xadd("bench.raw", {"e": json.dumps({"v": 1, "id": uuid.uuid4().hex,
                                                         "type": "bench", "ts": time.time(),
                                                         "data": {"i": j}})},
                          maxlen=max(n, 100_000), approximate=True)
            await pipe.execute()

    prod = asyncio.create_task(produce())
    while got < n:
        resp: Any = await r.xreadgroup("g", "c1", {"bench.raw": ">"}, count=batch, block=50)
        for _stream, entries in resp or []:
            ids = [m for m, _f in entries]
            for _m, f in entries:
                json.loads(f[b"e"])
            await r.xack("bench.raw", "g", *ids)
            got += len(ids)
    await prod
    dt = time.perf_counter() - t0
    await r.aclose()
    await p.aclose()
    return n / dt


async def latency(url: str, n: int, rate_hz: float) -> list[float]:
    r = connect(url)
    c = Consumer(r, "bench.lat", "g", "c1", block_s=1.0)
    await c.ensure_group()
    pub = Publisher(connect(url))
    lat: list[float] = []

    async def produce() -> None:
        for i in range(n):
            await pub.publish("bench.lat", Event("bench", {"i": i}))
            await asyncio.sleep(1 / rate_hz)

    prod = asyncio.create_task(produce())
    while len(lat) < n:
        ds = await c.poll()
        now = time.time()
        lat.extend((now - d.event.ts) * 1000 for d in ds)
        await c.ack(*ds)
    await prod
    await r.aclose()
    await pub.client.aclose()
    return lat


async def consume_child(url: str, name: str, out: Path, visibility_s: float) -> None:
    """The crash part's consumer process: handle (idempotent effect), log the id, ack."""
    r = connect(url)
    c = Consumer(r, "bench.crash", "g", name, batch=50, block_s=0.2, visibility_s=visibility_s)
    await c.ensure_group()
    with out.open("a") as log:
        while True:
            ds = await c.poll()
            for d in ds:  # one round trip per event, so that a kill lands mid-batch
                # the effect, idempotent and atomic: adding the id to a set (a SET NX plus a
                # separate INCR would miscount when the kill lands between the two)
                await r.sadd("bench.effects", d.event.id)
                log.write(d.event.id + "\n")
                log.flush()
            await c.ack(*ds)


async def crash(url: str, n: int, tmp: Path) -> dict[str, int | float]:
    r = connect(url)
    await Consumer(r, "bench.crash", "g", "setup").ensure_group()
    pub = Publisher(r, maxlen=n * 2)
    events = [Event("bench", {"i": i}) for i in range(n)]
    logs = [tmp / "a.log", tmp / "b.log"]

    def start(name: str, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, __file__, "--child", url, name, str(log)])

    a = start("a", logs[0])
    for i in range(0, n, 100):
        await pub.publish_many("bench.crash", events[i:i + 100])
        await asyncio.sleep(0.002)
        if i == n // 2:
            while not logs[0].exists() or len(logs[0].read_text().split()) < n // 4:
                await asyncio.sleep(0.01)
            os.kill(a.pid, signal.SIGKILL)  # mid-stream: it held delivered, unacked events
            a.wait()
            b = start("b", logs[1])
    t0 = time.perf_counter()
    while int(await r.scard("bench.effects")) < n and time.perf_counter() - t0 < 30:
        await asyncio.sleep(0.05)
    pending = (await r.xpending("bench.crash", "g"))["pending"]
    b.kill()
    b.wait()
    seen = [line for f in logs for line in f.read_text().split()]
    ids = {e.id for e in events}
    effects = int(await r.scard("bench.effects"))
    await r.aclose()
    return {"published": n, "deliveries": len(seen), "lost": len(ids - set(seen)),
            "duplicate_deliveries": len(seen) - len(set(seen)), "effects_applied": effects,
            "pending_after": pending}


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        asyncio.run(consume_child(sys.argv[2], sys.argv[3], Path(sys.argv[4]), 1.0))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="throughput events (default 100000)")
    ap.add_argument("--batch", type=int, default=500, help="publish/poll batch (default 500)")
    ap.add_argument("--latency-events", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=1000.0, help="latency publish rate, events/s")
    args = ap.parse_args()
    if not 1 <= args.events <= 10_000_000 or not 1 <= args.batch <= 10_000:
        print("--events must be 1..10,000,000 and --batch 1..10,000.", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        raw = asyncio.run(raw_throughput(server.url, args.events, args.batch))
        eps = asyncio.run(throughput(server.url, args.events, args.batch))
        print(f"throughput: {eps:,.0f} events/s ({args.events} events, batch {args.batch}; "
              f"goal ≥ 20,000); bare redis-py baseline {raw:,.0f} events/s, "
              f"ours/baseline {eps / raw:.2f}x")
        lat = sorted(asyncio.run(latency(server.url, args.latency_events, args.rate)))
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"latency publish→consume: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"({len(lat)} events at {args.rate:g}/s; goal p50 ≤ 5 ms)")
        res = asyncio.run(crash(server.url, 10_000, Path(tmp)))
        print("consumer SIGKILLed mid-stream: " + ", ".join(f"{k} {v}" for k, v in res.items())
              + " (goal: lost 0, effects_applied = published)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
