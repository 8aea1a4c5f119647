"""Prometheus metrics of the edge's workers (a private ``CollectorRegistry`` per worker).

With ``--workers N`` a scrape reaches one worker (the kernel's SO_REUSEPORT pick), so
every worker publishes its own exposition to ``<cache-dir>/metrics/worker-<id>.prom``
each second and answers ``/metrics`` with its live figures plus the other workers' latest
ones (each series keeps its ``worker`` label; sum over it). Snapshots older than
:data:`STALE_S` (a worker that died) are left out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from edge.clock import SYSTEM_CLOCK, Clock

STALE_S = 30.0


class EdgeMetrics:
    """The edge's counters, histograms and gauges."""

    def __init__(self, worker: str = "0", share_dir: Path | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.worker = worker
        self.share_dir = share_dir
        if share_dir is not None:
            share_dir.mkdir(parents=True, exist_ok=True)
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
        self.cut = Counter(
            "edge_responses_cut", "Responses ended before their last byte, by reason",
            ["reason", "worker"], registry=r)
        self.abandoned = Counter(
            "edge_fetches_abandoned", "Origin fetches cancelled: every client left",
            ["worker"], registry=r)
        self.prefetches_dropped = Counter(
            "edge_prefetches_dropped", "Prefetch hints dropped: too many queued",
            ["worker"], registry=r)
        self.fill_steps = Counter(
            "edge_fill_steps", "Steps of the miss path (edge.fill) taken, by step and outcome",
            ["step", "outcome", "worker"], registry=r)
        self.offload_ratio = Gauge(
            "edge_offload_ratio", "Share of response body bytes served without an upstream "
            "fetch (HIT/STALE/REVALIDATED)", ["worker"], registry=r)
        self.object_bytes = Counter(
            "edge_object_bytes", "Body bytes of cached-path answers (objects, not /metrics "
            "or /healthz), by source: cache (HIT/STALE/REVALIDATED) or upstream (a fetch)",
            ["source", "worker"], registry=r)
        self.fill_objects = Counter(
            "edge_proactive_fill_objects", "Objects fetched by proactive fill, by outcome",
            ["outcome", "worker"], registry=r)
        self.fill_titles = Counter(
            "edge_proactive_fill_titles", "Published titles seen by proactive fill, by outcome "
            "(filled, partial, skipped: another edge is assigned)", ["outcome", "worker"],
            registry=r)
        self.fill_seconds = Gauge(
            "edge_proactive_fill_last_seconds", "Seconds the last proactive fill took",
            ["worker"], registry=r)
        self.active = Gauge(
            "edge_active_requests", "Requests being answered now", ["worker"], registry=r)
        self.titles = Gauge(
            "edge_titles_cached", "Titles with at least one object in the cache",
            ["worker"], registry=r)
        self.cache_bytes = Gauge(
            "edge_cache_bytes", "Bytes held per cache tier", ["tier", "worker"], registry=r)
        self._hits = 0
        self._lookups = 0
        self.requests_total = 0
        self.body_bytes_total = 0
        """Plain totals for the edge.health heartbeat (the counters above carry labels)."""
        self._ratio = self.hit_ratio.labels(worker)
        self._bytes = 0
        self._cached_bytes = 0
        self._offload = self.offload_ratio.labels(worker)
        self._from_cache = self.object_bytes.labels("cache", worker)
        self._from_upstream = self.object_bytes.labels("upstream", worker)
        self._children: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    def observe_request(self, protocol: str, status: int, cache: str, body_bytes: int) -> None:
        key = (protocol, status, cache)
        child = self._children.get(key)
        if child is None:  # labels() costs a lock and a tuple per call: keep the children
            child = self._children[key] = (
                self.requests.labels(protocol, str(status), cache, self.worker),
                self.bytes_out.labels(protocol, self.worker))
        child[0].inc()
        self.requests_total += 1
        self.body_bytes_total += body_bytes
        if body_bytes:
            child[1].inc(body_bytes)
        if cache != "NONE":
            self._lookups += 1
            cached = cache.split(";")[0] in ("HIT", "STALE", "REVALIDATED")
            if cached:
                self._hits += 1
            self._ratio.set(self._hits / self._lookups)
            if body_bytes:
                self._bytes += body_bytes
                if cached:
                    self._cached_bytes += body_bytes
                    self._from_cache.inc(body_bytes)
                else:
                    self._from_upstream.inc(body_bytes)
                self._offload.set(self._cached_bytes / self._bytes)

    def observe_fill_object(self, outcome: str) -> None:
        self.fill_objects.labels(outcome, self.worker).inc()

    def observe_fill_title(self, outcome: str, seconds: float) -> None:
        self.fill_titles.labels(outcome, self.worker).inc()
        if outcome != "skipped":
            self.fill_seconds.labels(self.worker).set(seconds)

    @property
    def hit_ratio_value(self) -> float:
        return self._hits / self._lookups if self._lookups else 0.0

    def observe_step(self, step: str, outcome: str) -> None:
        self.fill_steps.labels(step, outcome, self.worker).inc()

    def observe_fetch(self, origin: str, outcome: str, seconds: float) -> None:
        self.origin_fetches.labels(origin, outcome, self.worker).inc()
        self.origin_latency.labels(origin, self.worker).observe(seconds)

    def publish(self) -> None:
        """Write this worker's exposition for the other workers (atomically)."""
        if self.share_dir is None:
            return
        tmp = self.share_dir / f".worker-{self.worker}.{os.getpid()}.tmp"
        tmp.write_bytes(generate_latest(self.registry))
        os.replace(tmp, self.share_dir / f"worker-{self.worker}.prom")

    def render(self) -> bytes:
        """This worker's live metrics merged with the other workers' snapshots."""
        families = {f.name: f for f in self.registry.collect()}
        for text in self._others():
            for fam in text_string_to_metric_families(text):
                if fam.name in families:
                    families[fam.name].samples.extend(fam.samples)
                else:
                    families[fam.name] = fam
        return generate_latest(_Families(families.values()))  # type: ignore[arg-type]

    def _others(self) -> list[str]:
        if self.share_dir is None:
            return []
        out = []
        now = self.clock()
        for f in sorted(self.share_dir.glob("worker-*.prom")):
            if f.name == f"worker-{self.worker}.prom":
                continue
            with contextlib.suppress(OSError):
                if now - f.stat().st_mtime <= STALE_S:
                    out.append(f.read_text())
        return out


class _Families:
    """A collector that yields already collected metric families (for exposition)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families
