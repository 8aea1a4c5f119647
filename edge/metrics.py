"""Prometheus metrics of one edge worker (a private ``CollectorRegistry`` per app).

With ``--workers N`` each worker process answers ``/metrics`` with its own figures and a
``worker`` label; sum over workers when scraping through the shared port (documented in
the README: every scrape reaches one worker picked by the kernel's SO_REUSEPORT hash).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class EdgeMetrics:
    """The edge's counters, histograms and gauges."""

    def __init__(self, worker: str = "0") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.worker = worker
        r = self.registry
        self.requests = Counter(
            "edge_requests", "Requests answered, by protocol, status and cache result",
            ["protocol", "status", "cache", "worker"], registry=r)
        self.bytes_out = Counter(
            "edge_response_body_bytes", "Response body bytes sent to clients",
            ["protocol", "worker"], registry=r)
        self.hit_ratio = Gauge(
            "edge_hit_ratio", "Share of object requests answered from cache (HIT/STALE/REVALIDATED)",
            ["worker"], registry=r)
        self.origin_fetches = Counter(
            "edge_origin_fetches", "Requests sent to origins, by origin and outcome",
            ["origin", "outcome", "worker"], registry=r)
        self.origin_latency = Histogram(
            "edge_origin_fetch_seconds", "Time to an origin's response headers",
            ["origin", "worker"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.collapsed = Counter(
            "edge_collapsed_requests", "Requests that joined an in-flight origin fetch",
            ["worker"], registry=r)
        self.prefetches = Counter(
            "edge_prefetches", "Background prefetches started", ["worker"], registry=r)
        self.cache_bytes = Gauge(
            "edge_cache_bytes", "Bytes held per cache tier", ["tier", "worker"], registry=r)
        self._hits = 0
        self._lookups = 0
        self._ratio = self.hit_ratio.labels(worker)
        self._children: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    def observe_request(self, protocol: str, status: int, cache: str, body_bytes: int) -> None:
        key = (protocol, status, cache)
        child = self._children.get(key)
        if child is None:  # labels() costs a lock and a tuple per call: keep the children
            child = self._children[key] = (
                self.requests.labels(protocol, str(status), cache, self.worker),
                self.bytes_out.labels(protocol, self.worker))
        child[0].inc()
        if body_bytes:
            child[1].inc(body_bytes)
        if cache != "NONE":
            self._lookups += 1
            if cache.split(";")[0] in ("HIT", "STALE", "REVALIDATED"):
                self._hits += 1
            self._ratio.set(self._hits / self._lookups)

    def observe_fetch(self, origin: str, outcome: str, seconds: float) -> None:
        self.origin_fetches.labels(origin, outcome, self.worker).inc()
        self.origin_latency.labels(origin, self.worker).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
