"""The book as Prometheus metrics, computed at scrape time (a custom collector over
prometheus_client's public metric families). Labels: title, edge, abr, protocol."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from qoe.book import DIMENSIONS, STARTUP_BUCKETS_S, QoeBook

LABELS = list(DIMENSIONS)
_COUNTERS = (
    # metric name (without _total), Totals field, help
    ("qoe_sessions", "sessions", "Sessions seen (first beacon)"),
    ("qoe_sessions_ended", "ended", "Sessions whose final beacon arrived"),
    ("qoe_beacons", "beacons", "Beacons counted (repeats and late ones excluded)"),
    ("qoe_stalls", "stalls", "Stalls (rebuffering events) after startup"),
    ("qoe_stall_seconds", "stall_s", "Seconds spent stalled after startup"),
    ("qoe_played_seconds", "played_s", "Seconds of media played"),
    ("qoe_switches", "switches", "Rendition switches"),
    ("qoe_errors", "errors", "Player errors and retried requests"),
)


class BookCollector:
    """Yields the book's figures on every scrape."""

    def __init__(self, book: QoeBook, extra: Callable[[], dict[str, float]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.book, self.extra, self.clock = book, extra, clock

    def collect(self) -> Iterator[Metric]:
        book, now = self.book, self.clock()
        items = sorted(book.totals.items())
        for name, attr, doc in _COUNTERS:
            c = CounterMetricFamily(name, doc, labels=LABELS)
            for key, t in items:
                c.add_metric(list(key), float(getattr(t, attr)))
            yield c
        h = HistogramMetricFamily("qoe_startup_seconds", "Startup delay of sessions",
                                  labels=LABELS)
        for key, t in items:
            running, buckets = 0, []
            for bound, n in zip((*STARTUP_BUCKETS_S, float("inf")), t.startup_buckets, strict=True):
                running += n
                buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", float(running)))
            h.add_metric(list(key), buckets, t.startup_sum_s)
        yield h
        live = book.live(now)
        active = GaugeMetricFamily("qoe_active_sessions", "Sessions playing now (a beacon within "
                                   "--active-s, not ended)", labels=LABELS)
        bitrate = GaugeMetricFamily("qoe_bitrate_bps", "Mean bitrate being played by the active "
                                    "sessions", labels=LABELS)
        buffer = GaugeMetricFamily("qoe_buffer_seconds", "Mean buffer of the active sessions",
                                   labels=LABELS)
        for key, _t in items:
            lv = live.get(key)
            active.add_metric(list(key), float(lv.active if lv else 0))
            if lv and lv.active:
                bitrate.add_metric(list(key), lv.bitrate_sum_bps / lv.active)
                buffer.add_metric(list(key), lv.buffer_sum_s / lv.active)
        yield active
        yield bitrate
        yield buffer
        ignored = CounterMetricFamily("qoe_beacons_ignored", "Beacons not counted, by reason",
                                      labels=["reason"])
        ignored.add_metric(["stale"], float(book.stale))
        for reason, value in (self.extra() if self.extra else {}).items():
            ignored.add_metric([reason], value)
        yield ignored


def registry_for(book: QoeBook, extra: Callable[[], dict[str, float]] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BookCollector(book, extra))  # type: ignore[arg-type]
    return registry
