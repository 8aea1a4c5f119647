"""The aggregator's shell: a consumer-group member on the ``qoe`` topic feeding the book, and
an aiohttp server for ``/metrics``, ``/api/qoe``, ``/api/qoe/history`` and the dashboard.

Redis may be away at start or later: the server answers meanwhile (with what it has), and the
consumer picks up where its group left off when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from redis.exceptions import RedisError

from abrstack.beacons import QOE, beacon_of
from abrstack.bus import Consumer, MalformedEvent, connect
from qoe import QoeError
from qoe.book import DIMENSIONS, History, Live, QoeBook, Totals, figures
from qoe.metrics import registry_for

log = logging.getLogger("abrstack.qoe")
STATIC = ("dashboard.html", "dashboard.js", "dashboard.css")
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


@dataclass(frozen=True)
class QoeConfig:
    """One aggregator; built once by the CLI."""

    redis_url: str
    host: str = "127.0.0.1"
    port: int = 9300
    """HTTP port (0: any free one; the first line printed names it)."""
    group: str = "qoe-aggregator"
    """Consumer group: aggregators in one group share the beacons (sum their counters);
    each group sees every beacon."""
    active_s: float = 30.0
    """A session is active for this long after its last beacon."""
    sample_s: float = 2.0
    """Seconds between the dashboard's points."""
    points: int = 300
    """Points kept per series."""


class Aggregator:
    """The book, its history and the consumer that feeds them."""

    def __init__(self, cfg: QoeConfig) -> None:
        self.cfg = cfg
        self.book = QoeBook(active_s=cfg.active_s)
        self.history = History(cfg.points)
        self.malformed = 0
        self.consumed = 0
        self.connected = False
        self.registry = registry_for(self.book, lambda: {"malformed": float(self.malformed)})

    def handle(self, data: Any, now_s: float) -> None:
        self.book.apply(data, now_s)
        self.consumed += 1

    async def consume(self, stop: asyncio.Event) -> None:
        """Poll the group, dead-letter what is not a beacon, apply the rest, acknowledge."""
        client = connect(self.cfg.redis_url)
        name = f"{socket.gethostname()}-{os.getpid()}"
        consumer = Consumer(client, QOE, self.cfg.group, name, visibility_s=30.0, block_s=0.5,
                            batch=500)
        ready = False
        try:
            while not stop.is_set():
                try:
                    if not ready:
                        await consumer.ensure_group("0")  # a new group reads the retained beacons
                        ready = self.connected = True
                    batch = await consumer.poll()
                    for d in batch:
                        try:
                            beacon = beacon_of(d.event)
                        except MalformedEvent as exc:
                            self.malformed += 1
                            await consumer.dead_letter(d.msg_id, {"e": d.event.encode()},
                                                       f"not a beacon: {exc}", d.deliveries)
                            continue
                        self.handle(beacon, time.time())
                    await consumer.ack(*batch)
                except (RedisError, OSError) as exc:
                    if self.connected:
                        log.warning("qoe: event bus at %s unreachable (%s); retrying",
                                    self.cfg.redis_url, exc)
                    self.connected = ready = False
                    await asyncio.sleep(0.5)
        finally:
            await client.aclose()

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.history.sample(self.book, time.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.sample_s):
                    await stop.wait()

    def snapshot(self) -> dict[str, Any]:
        """The JSON API's body: everything, then per dimension."""
        now = time.time()
        everything, live = Totals(), Live()
        for t in self.book.totals.values():
            everything.add(t)
        for lv in self.book.live(now).values():
            live.active += lv.active
            live.bitrate_sum_bps += lv.bitrate_sum_bps
            live.buffer_sum_s += lv.buffer_sum_s
        return {
            "now": round(now, 3), "bus": {"connected": self.connected, "group": self.cfg.group,
                                         "consumed": self.consumed, "malformed": self.malformed,
                                         "stale": self.book.stale},
            "all": figures(everything, live),
            "by": {d: self.book.rollup(d, now) for d in DIMENSIONS},
        }

    def app(self) -> web.Application:
        app = web.Application()

        async def metrics(_r: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry),
                                headers={"content-type": "text/plain; version=0.0.4"})

        async def api(_r: web.Request) -> web.Response:
            return web.json_response(self.snapshot(), headers={"cache-control": "no-store"})

        async def history(_r: web.Request) -> web.Response:
            body = {"interval_s": self.cfg.sample_s, **self.history.to_dict()}
            return web.json_response(body, headers={"cache-control": "no-store"})

        async def healthz(_r: web.Request) -> web.Response:
            return web.json_response({"status": "ok", "bus": self.connected})

        def static(name: str) -> Any:
            text = resources.files("qoe").joinpath("static", name).read_bytes()
            ctype = _TYPES[name.rsplit(".", 1)[1]]

            async def serve(_r: web.Request) -> web.Response:
                return web.Response(body=text, headers={"content-type": f"{ctype}; charset=utf-8"})
            return serve

        app.router.add_get("/metrics", metrics)
        app.router.add_get("/api/qoe", api)
        app.router.add_get("/api/qoe/history", history)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/", static("dashboard.html"))
        for name in STATIC[1:]:
            app.router.add_get(f"/static/{name}", static(name))
        return app


async def serve(cfg: QoeConfig) -> None:
    agg = Aggregator(cfg)
    runner = web.AppRunner(agg.app(), access_log=None)
    await runner.setup()
    try:
        sock = socket.create_server((cfg.host, cfg.port))
    except OSError as exc:
        await runner.cleanup()
        raise QoeError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}.") from None
    await web.SockSite(runner, sock).start()
    port = sock.getsockname()[1]
    base = f"http://{cfg.host}:{port}"
    print(f"qoe: dashboard {base}/ · metrics {base}/metrics · API {base}/api/qoe · "
          f"bus {cfg.redis_url} (group {cfg.group})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.gather(agg.consume(stop), agg.sample(stop))
    finally:
        await runner.cleanup()


def run(cfg: QoeConfig) -> int:
    asyncio.run(serve(cfg))
    return 0
