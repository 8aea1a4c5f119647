"""Prometheus metrics of one origin app, in a registry of its own.

Each app gets its own :class:`prometheus_client.CollectorRegistry` (not the global one), so
that several apps can live in one process (tests, an edge with an embedded origin). With
several worker processes each worker reports its own counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class OriginMetrics:
    """The collectors of one origin app."""

    registry: CollectorRegistry
    """Where the collectors are registered; ``/metrics`` exposes exactly this registry."""
    requests: Counter
    """Requests answered, by route name, method and status code."""
    response_bytes: Counter
    """Body bytes sent, by route name (Content-Length of the answer; 0 for HEAD and 304)."""
    duration: Histogram
    """Time to produce the answer's headers (the body may still be in flight), by route."""
    _children: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)
    """Labelled children by label values: ``labels()`` is costly at thousands of calls/s."""

    def count(self, route: str, method: str, status: int, body_bytes: int | None) -> None:
        """Counts one answer; HEAD, 204 and 304 answers carry no body bytes."""
        key: tuple[Any, ...] = ("r", route, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        if method != "HEAD" and status not in (204, 304):
            key = ("b", route)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.response_bytes.labels(route)
            child.inc(body_bytes or 0)

    def observe_duration(self, route: str, duration_s: float) -> None:
        """Records how long the handler of ``route`` took."""
        key = ("d", route)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.duration.labels(route)
        child.observe(duration_s)


def make_metrics(registry: CollectorRegistry | None = None) -> OriginMetrics:
    """Creates the origin's collectors in ``registry`` (a fresh registry when None)."""
    registry = registry if registry is not None else CollectorRegistry()
    return OriginMetrics(
        registry=registry,
        requests=Counter(
            "abr_origin_requests",
            "Requests answered by the origin.",
            ["route", "method", "status"],
            registry=registry,
        ),
        response_bytes=Counter(
            "abr_origin_response_bytes",
            "Response body bytes sent by the origin.",
            ["route"],
            registry=registry,
        ),
        duration=Histogram(
            "abr_origin_request_duration_seconds",
            "Time until the origin's response headers were ready.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        ),
    )
