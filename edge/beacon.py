"""``POST /beacon``: players' QoE beacons, appended to the ``qoe`` topic of the event bus.

CORS-safe both ways a page can send one: ``navigator.sendBeacon`` with a string (a
``text/plain`` request, never preflighted) and ``fetch`` with ``application/json`` (preflighted:
``OPTIONS /beacon`` allows ``POST`` and ``Content-Type``). A beacon is checked against
:func:`abrstack.beacons.validate_beacon` and answered at once: the request only puts it in
this worker's bounded queue, and a background task sends the queue through the bus's
:class:`~abrstack.bus.Publisher` (whose outbox keeps events while Redis is down). So the bus is
never on the serving path: with Redis away the edge still answers ``202`` in microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter

from abrstack.beacons import MAX_BEACON_BYTES, QOE, beacon_event, validate_beacon
from abrstack.bus import Event, MalformedEvent, Publisher, connect
from edge.exchange import Exchange, Receive, read_body

log = logging.getLogger("abrstack.edge")

MAX_QUEUED_BEACONS = 10_000
"""Beacons waiting in a worker for the publisher; the oldest are dropped beyond (counted)."""
OUTBOX_BEACONS = 10_000
"""The publisher's outbox while Redis is down (oldest dropped beyond, counted)."""
QOE_MAXLEN = 1_000_000
"""Retention of the ``qoe`` topic (approximate ``XADD MAXLEN``)."""
BATCH = 500
CONTENT_TYPES = ("text/plain", "application/json")
CORS = [("access-control-allow-origin", "*"), ("cache-control", "no-store")]


class Beacons:
    """One edge worker's beacon endpoint and its queue towards the bus."""

    def __init__(self, redis_url: str | None, via_name: str, worker: str,
                 registry: CollectorRegistry) -> None:
        self.redis_url = redis_url
        self.via_name = via_name
        self.worker = worker
        self.queue: deque[Event] = deque(maxlen=MAX_QUEUED_BEACONS)
        self.counter = Counter("edge_beacons", "QoE beacons by outcome (accepted, rejected, "
                               "dropped: the queue or outbox was full)", ["outcome", "worker"],
                               registry=registry)
        self.publisher: Publisher | None = None
        self._wake: asyncio.Event | None = None

    def start(self, spawn: Callable[[Awaitable[None]], object]) -> None:
        if self.redis_url:
            self._wake = asyncio.Event()
            spawn(self._send_loop(self.redis_url))

    async def handle(self, ctx: Exchange, receive: Receive) -> None:
        """Answer ``/beacon`` (any method)."""
        method = ctx.method
        if method == "OPTIONS":  # CORS preflight of a fetch() with a JSON body
            await ctx.send_full(204, [*CORS, ("access-control-allow-methods", "POST, OPTIONS"),
                                      ("access-control-allow-headers", "content-type"),
                                      ("access-control-max-age", "86400")], b"")
            return
        if method != "POST":
            await self._refuse(ctx, 405, "send beacons with POST", [("allow", "POST, OPTIONS")])
            return
        if not self.redis_url:
            await self._refuse(ctx, 503, "QoE beacons are off: this edge runs without --redis "
                                         "(no event bus to append them to)")
            return
        ctype = ctx.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in CONTENT_TYPES:
            await self._refuse(ctx, 415, "a beacon is JSON sent as text/plain (sendBeacon) or "
                                         "application/json")
            return
        declared = ctx.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BEACON_BYTES:
            await self._refuse(ctx, 413, f"a beacon is at most {MAX_BEACON_BYTES} bytes")
            return
        body = await read_body(receive, MAX_BEACON_BYTES + 1)
        if len(body) > MAX_BEACON_BYTES:
            await self._refuse(ctx, 413, f"a beacon is at most {MAX_BEACON_BYTES} bytes")
            return
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError) as exc:
            await self._refuse(ctx, 400, f"the beacon is not JSON ({str(exc)[:80]})")
            return
        if isinstance(obj, dict):
            obj.pop("received_by", None)  # only an edge says who received it
        try:
            beacon = validate_beacon(obj)
        except MalformedEvent as exc:
            await self._refuse(ctx, 400, f"bad beacon: {exc}")
            return
        beacon["received_by"] = self.via_name
        beacon.setdefault("edge", self.via_name)
        event = beacon_event(beacon)
        if len(self.queue) == self.queue.maxlen:
            self.counter.labels("dropped", self.worker).inc()
        self.queue.append(event)
        if self._wake is not None:
            self._wake.set()
        self.counter.labels("accepted", self.worker).inc()
        await ctx.send_full(202, [*CORS, ("content-type", "application/json")],
                            json.dumps({"accepted": event.id}).encode())

    async def _refuse(self, ctx: Exchange, status: int, sentence: str,
                      extra: list[tuple[str, str]] | None = None) -> None:
        self.counter.labels("rejected", self.worker).inc()
        await ctx.send_full(status, [*CORS, *(extra or []),
                                     ("content-type", "text/plain; charset=utf-8")],
                            (sentence + ".\n").encode())

    async def _send_loop(self, url: str) -> None:
        """Move queued beacons to the bus (pipelined); the publisher's outbox rides out an
        outage and sends them in order when Redis is back."""
        assert self._wake is not None
        client = connect(url)
        self.publisher = pub = Publisher(client, maxlen=QOE_MAXLEN, outbox_max=OUTBOX_BEACONS)
        try:
            while True:
                if not self.queue:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await self._wake.wait()
                    self._wake.clear()
                dropped = pub.dropped
                if self.queue:
                    batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
                    await pub.publish_many(QOE, batch)
                elif pub.outbox:
                    await pub.flush()
                if pub.dropped > dropped:
                    self.counter.labels("dropped", self.worker).inc(pub.dropped - dropped)
        finally:
            with contextlib.suppress(Exception):  # best effort at shutdown
                async with asyncio.timeout(1.0):
                    if self.queue:
                        await pub.publish_many(QOE, list(self.queue))
                    await pub.flush()
            await client.aclose()
