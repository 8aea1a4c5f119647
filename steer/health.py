"""What the steering service knows of each edge: its last heartbeats (`edge.health`).

:class:`HealthView` is pure (the caller passes the time): an edge is *up* while one of its
workers has been heard from within `stale_s`; its load is the sum over its live workers; an
edge whose load passes `overload` (requests in progress, summed over workers) is *overloaded*
and gets `overload_weight` in the rendezvous order, so that it keeps its titles but takes
fewer new ones. :func:`follow_health` is the I/O shell: it feeds the view from the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from abrstack.bus import Consumer, Event, MalformedEvent, connect
from abrstack.events import EDGE_HEALTH, health_of

log = logging.getLogger(__name__)

STALE_S = 3.0
"""An edge none of whose workers was heard from for this long is out (heartbeats: 1 s)."""
MAX_WORKERS_PER_EDGE = 256


@dataclass
class EdgeHealth:
    """One edge's latest figures, summed (rates, load) or averaged (ratios) over its workers."""

    name: str
    heard_s: float = float("-inf")
    """When a worker of this edge was last heard from (the view's clock)."""
    workers: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)
    """worker id -> (heard at, figures)."""

    def live(self, now_s: float, stale_s: float) -> list[dict[str, float]]:
        return [f for at, f in self.workers.values() if now_s - at <= stale_s]

    def figures(self, now_s: float, stale_s: float) -> dict[str, float]:
        live = self.live(now_s, stale_s)
        if not live:
            return {}
        out = {k: sum(f[k] for f in live) for k in ("active", "requests_per_s", "bytes_per_s")}
        out["hit_ratio"] = sum(f["hit_ratio"] for f in live) / len(live)
        out["cache_bytes"] = max(f["cache_bytes"] for f in live)   # workers share one disk tier
        out["cache_fill"] = max(f["cache_fill"] for f in live)
        out["workers"] = len(live)
        return out


class HealthView:
    """Edges and their health. `static=True` (no bus): every known edge counts as up."""

    def __init__(self, edges: list[str], *, stale_s: float = STALE_S, overload: float = 256.0,
                 overload_weight: float = 0.25, static: bool = False) -> None:
        if stale_s <= 0 or overload <= 0 or not 0 < overload_weight <= 1:
            raise ValueError("stale_s and overload must be > 0 and overload_weight in (0, 1].")
        self.edges = {name: EdgeHealth(name) for name in edges}
        self.stale_s, self.overload, self.overload_weight = stale_s, overload, overload_weight
        self.static = static
        self.ignored = 0
        """Heartbeats from edges that are not in the fleet, or malformed."""

    def observe(self, event: Event, now_s: float) -> bool:
        """Take one heartbeat; False when it was not a usable one for a known edge."""
        try:
            edge, worker, figures = health_of(event)
        except MalformedEvent as e:
            log.debug("steer: ignoring heartbeat %s: %s", event.id, e)
            self.ignored += 1
            return False
        h = self.edges.get(edge)
        if h is None or (worker not in h.workers and len(h.workers) >= MAX_WORKERS_PER_EDGE):
            self.ignored += 1
            return False
        h.workers[worker] = (now_s, figures)
        h.heard_s = now_s
        return True

    def up(self, now_s: float) -> list[str]:
        """The edges that serve now, in the fleet's order."""
        if self.static:
            return list(self.edges)
        return [n for n, h in self.edges.items() if now_s - h.heard_s <= self.stale_s]

    def weights(self, now_s: float) -> dict[str, float]:
        """Rendezvous weights of the edges that are up: 1, or `overload_weight` when overloaded."""
        out = {}
        for name in self.up(now_s):
            f = self.edges[name].figures(now_s, self.stale_s)
            out[name] = self.overload_weight if f.get("active", 0.0) >= self.overload else 1.0
        return out

    def snapshot(self, now_s: float) -> dict[str, dict[str, float | bool]]:
        """Per edge: up, overloaded, seconds since heard, and its figures (for /metrics, status)."""
        up, w = set(self.up(now_s)), self.weights(now_s)
        out: dict[str, dict[str, float | bool]] = {}
        for name, h in self.edges.items():
            heard = now_s - h.heard_s if h.heard_s > float("-inf") else -1.0
            out[name] = {"up": name in up, "overloaded": w.get(name, 1.0) < 1.0,
                         "heard_s_ago": round(heard, 3), **h.figures(now_s, self.stale_s)}
        return out


async def follow_health(url: str, view: HealthView) -> None:
    """Feed `view` from `edge.health` until cancelled: this process's own consumer group, from
    new events on (a heartbeat is only worth its freshness). Redis away: keep trying."""
    loop = asyncio.get_running_loop()
    client = connect(url)
    group = f"steer-{os.uname().nodename}-{os.getpid()}"
    consumer = Consumer(client, EDGE_HEALTH, group, "c0", visibility_s=60.0, block_s=0.5,
                        batch=500)

    async def handle(event: Event) -> None:
        view.observe(event, loop.time())

    try:
        while True:
            try:
                await consumer.ensure_group("$")
                break
            except Exception as e:  # noqa: BLE001 - Redis away at start: try again
                log.warning("steer: event bus at %s not reachable (%s); retrying", url, e)
                await asyncio.sleep(1.0)
        await consumer.run(handle)
    finally:
        with contextlib.suppress(Exception):  # best effort: the stream is trimmed anyway
            await client.xgroup_destroy(EDGE_HEALTH, group)
        await client.aclose()
