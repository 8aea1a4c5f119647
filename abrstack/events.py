"""Event schemas shared by the services (the envelope is `abrstack.bus.Event`)."""

from __future__ import annotations

from collections.abc import Sequence

from abrstack.bus import Event, MalformedEvent

TITLES = "titles"
"""Topic: a title was published, replaced or deleted (sent after the atomic rename)."""
TITLE_KINDS = ("title.published", "title.replaced", "title.deleted")
MAX_TITLE_CHARS = 128


def title_event(kind: str, title: str, version: str | None = None,
                renditions: Sequence[str] = (), manifests: Sequence[str] = ()) -> Event:
    """A `titles` event: `kind` is one of `TITLE_KINDS`."""
    if kind not in TITLE_KINDS:
        raise ValueError(f"unknown title event {kind!r}; known: {', '.join(TITLE_KINDS)}")
    return Event(kind, {"title": title, "version": version, "renditions": list(renditions),
                        "manifests": list(manifests)})


def title_of(event: Event) -> str:
    """The title a `titles` event names; `MalformedEvent` when it is not a usable name."""
    title = event.data.get("title")
    if event.type not in TITLE_KINDS:
        raise MalformedEvent(f"not a titles event: {event.type!r}")
    if not isinstance(title, str) or not 0 < len(title) <= MAX_TITLE_CHARS \
            or title.startswith((".", "-")) or "/" in title or ".." in title:
        raise MalformedEvent(f"bad title name {title!r}")
    return title


EDGE_HEALTH = "edge.health"
"""Topic: each edge worker's heartbeat, about once a second (type `edge.health`)."""
HEALTH_FIELDS = ("active", "requests_per_s", "bytes_per_s", "hit_ratio", "cache_bytes",
                 "cache_fill")
"""The numeric figures of a heartbeat: requests in progress, request and byte rates over the
last interval, share of cache lookups that hit (since start), bytes cached (memory + disk),
and the disk tier's fill (0-1)."""
MAX_EDGE_CHARS = 64


def health_event(edge: str, worker: str, interval_s: float, **figures: float) -> Event:
    """An `edge.health` heartbeat of worker `worker` of edge `edge` (figures: `HEALTH_FIELDS`)."""
    unknown = set(figures) - set(HEALTH_FIELDS)
    if unknown:
        raise ValueError(f"unknown heartbeat figures {sorted(unknown)}; known: {', '.join(HEALTH_FIELDS)}")
    return Event(EDGE_HEALTH, {"edge": edge, "worker": worker, "interval_s": interval_s,
                               **{k: float(figures.get(k, 0.0)) for k in HEALTH_FIELDS}})


def health_of(event: Event) -> tuple[str, str, dict[str, float]]:
    """(edge, worker, figures) of an `edge.health` event; `MalformedEvent` when it is not one."""
    if event.type != EDGE_HEALTH:
        raise MalformedEvent(f"not an edge.health event: {event.type!r}")
    edge, worker = event.data.get("edge"), event.data.get("worker", "0")
    if not isinstance(edge, str) or not 0 < len(edge) <= MAX_EDGE_CHARS:
        raise MalformedEvent(f"bad edge name {edge!r}")
    if not isinstance(worker, str) or not 0 < len(worker) <= MAX_EDGE_CHARS:
        raise MalformedEvent(f"bad worker id {worker!r}")
    figures = {}
    for k in HEALTH_FIELDS:
        v = event.data.get(k, 0.0)
        if not isinstance(v, int | float) or isinstance(v, bool) or v != v or v < 0:
            raise MalformedEvent(f"heartbeat figure {k} must be a number ≥ 0, not {v!r}")
        figures[k] = float(v)
    return edge, worker, figures
