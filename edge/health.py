"""The edge's `edge.health` heartbeat: each worker publishes its load, request and byte
rates, hit ratio and cache fill about once a second, for the steering service.

Off the serving path: the figures are counters the request path keeps anyway, read here
once a second; a bus that is down keeps only the last few heartbeats (older ones are worth
nothing) and never slows a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from abrstack.bus import Event, Publisher, connect
from abrstack.events import EDGE_HEALTH, health_event

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
OUTBOX = 4
"""Heartbeats kept while Redis is away (a stale heartbeat says nothing about now)."""
TOPIC_MAXLEN = 10_000


@dataclass(frozen=True)
class Counters:
    """What a worker has counted since it started, read at one instant."""

    at_s: float
    requests: int
    body_bytes: int
    active: int
    hit_ratio: float
    cache_bytes: int
    disk_capacity_bytes: int


def heartbeat(edge: str, worker: str, before: Counters, now: Counters) -> Event:
    """The heartbeat for the interval from `before` to `now` (pure)."""
    dt = max(1e-6, now.at_s - before.at_s)
    return health_event(
        edge, worker, round(dt, 3), active=now.active,
        requests_per_s=round(max(0, now.requests - before.requests) / dt, 3),
        bytes_per_s=round(max(0, now.body_bytes - before.body_bytes) / dt, 1),
        hit_ratio=round(now.hit_ratio, 4), cache_bytes=now.cache_bytes,
        cache_fill=round(min(1.0, now.cache_bytes / max(1, now.disk_capacity_bytes)), 4))


class Counted(Protocol):
    async def counters(self) -> Counters: ...


async def publish_health(url: str, edge: str, worker: str, source: Counted,
                         interval_s: float = HEARTBEAT_S) -> None:
    """Publish `source`'s heartbeat to `edge.health` every `interval_s` until cancelled."""
    client = connect(url)
    pub = Publisher(client, maxlen=TOPIC_MAXLEN, outbox_max=OUTBOX)
    try:
        before = await source.counters()
        while True:
            await asyncio.sleep(interval_s)
            try:
                now = await source.counters()
                await pub.publish(EDGE_HEALTH, heartbeat(edge, worker, before, now))
                before = now
            except Exception as e:  # noqa: BLE001 - the heartbeat must never die
                log.warning("edge: heartbeat failed: %s", e)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
