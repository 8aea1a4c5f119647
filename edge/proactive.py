"""Proactive fill: on ``title.published`` the edges that rendezvous hashing assigns to the
title fetch its manifests and the first K segments of every rendition, so that the first
viewers hit (Netflix Open Connect fills appliances ahead of demand in the same spirit).

Which edges fill is :func:`steer.hrw.assign` over the fleet's edge names with no loads (the
steering service uses the same order, so a title's first viewers are sent where it was
filled). What to fetch is :func:`plan_segments`, pure: the HLS master's variant and
rendition playlists, then from each its init section and its first K segments. The fetches
go through the edge's own miss path (collapsing, the shield, the store) without a client.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import m3u8

from abrstack.bus import Event, MalformedEvent, SeenIds
from abrstack.events import title_of
from steer.hrw import assign

log = logging.getLogger("abrstack.edge")

FILL_CONCURRENCY = 4
"""Objects of one title fetched at once (the fill must not crowd out viewers)."""
MAX_PLAYLISTS = 64
MAX_SEGMENTS = 100


@dataclass(frozen=True)
class FillPlan:
    """Who fills what."""

    me: str
    """This edge's name (its ``--via-name``)."""
    fleet: tuple[str, ...]
    """Every edge's name (the HRW node set)."""
    segments: int
    """First K segments of every rendition."""
    replicas: int = 1
    """The first ``replicas`` edges of the title's order fill it."""

    def mine(self, title: str) -> bool:
        """Whether this edge is one of the title's assigned edges."""
        return self.segments > 0 and self.me in assign(title, self.fleet, replicas=self.replicas)


def _resolve(base_path: str, uri: str) -> str | None:
    """A playlist URI as a path inside the same title (absolute URLs to other hosts, and
    paths that climb out of the title, are not this title's to fill)."""
    if "://" in uri or uri.startswith("//"):
        return None
    path = uri.split("?", 1)[0]
    joined = path if path.startswith("/") else posixpath.join(posixpath.dirname(base_path), path)
    out = posixpath.normpath(joined)
    root = "/".join(base_path.split("/")[:3]) + "/"  # /media/<title>/
    return out if out.startswith(root) and root.startswith("/media/") else None


def variant_paths(master_path: str, master_text: str) -> list[str]:
    """The media playlists an HLS master names (variants and renditions), as paths."""
    doc = m3u8.loads(master_text)
    uris = [p.uri for p in doc.playlists] + [m.uri for m in doc.media if m.uri]
    out: list[str] = []
    for u in uris:
        p = _resolve(master_path, u)
        if p is not None and p not in out:
            out.append(p)
    return out[:MAX_PLAYLISTS]


def plan_segments(playlist_path: str, playlist_text: str, k: int) -> list[str]:
    """A media playlist's init section(s) and first ``k`` segments, as paths."""
    doc = m3u8.loads(playlist_text)
    out: list[str] = []
    for seg in doc.segments[:min(k, MAX_SEGMENTS)]:
        for uri in ([seg.init_section.uri] if seg.init_section is not None else []) + [seg.uri]:
            p = _resolve(playlist_path, uri or "")
            if p is not None and p not in out:
                out.append(p)
    return out


Warm = Callable[[str], Awaitable[bytes | None]]
"""Fetch a path into the cache through the miss path; its body, None if it failed."""


class ProactiveFiller:
    """A ``titles`` handler: fills the titles this edge is assigned. Counts its progress."""

    def __init__(self, plan: FillPlan, warm: Warm,
                 on_object: Callable[[str], None] | None = None,
                 on_title: Callable[[str, float], None] | None = None) -> None:
        self.plan = plan
        self.warm = warm
        self.on_object = on_object
        """Told each object's outcome (``filled`` or ``failed``)."""
        self.on_title = on_title
        """Told each title's outcome (``filled``, ``partial``, ``skipped``) and its seconds."""
        self.filled: dict[str, list[str]] = {}
        """Title → the paths this edge filled (for tests and fleet status)."""
        self.seen = SeenIds()
        self._tasks: set[asyncio.Task[list[str]]] = set()

    async def __call__(self, event: Event) -> None:
        if event.type != "title.published" and event.type != "title.replaced":
            return
        try:
            title = title_of(event)
        except MalformedEvent as e:
            log.warning("edge: ignoring titles event %s: %s", event.id, e)
            return
        if not self.plan.mine(title):
            if self.on_title is not None:
                self.on_title("skipped", 0.0)
            return
        if not self.seen.first_time(event.id):
            return
        # In the background: the consumer acks at once, and titles published together fill
        # together. A fill lost to a restart costs only misses (it is an optimisation).
        task = asyncio.ensure_future(self.fill(title))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def fill(self, title: str) -> list[str]:
        """Fetch ``title``'s manifests and first segments; returns the paths that came in."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        master = f"/media/{title}/master.m3u8"
        got: list[str] = []
        failed = 0
        slots = asyncio.Semaphore(FILL_CONCURRENCY)

        async def one(path: str) -> bytes | None:
            nonlocal failed
            async with slots:
                body = await self.warm(path)
            if body is None:
                failed += 1
            else:
                got.append(path)
            if self.on_object is not None:
                self.on_object("failed" if body is None else "filled")
            return body

        master_body, _ = await asyncio.gather(one(master), one(f"/media/{title}/manifest.mpd"))
        if master_body is not None:
            playlists = variant_paths(master, master_body.decode("utf-8", "replace"))
            bodies = await asyncio.gather(*(one(p) for p in playlists))
            segments: list[str] = []
            for p, b in zip(playlists, bodies, strict=True):
                if b is not None:
                    segments += [s for s in plan_segments(p, b.decode("utf-8", "replace"),
                                                          self.plan.segments)
                                 if s not in segments]
            await asyncio.gather(*(one(s) for s in segments))
        self.filled[title] = got
        if self.on_title is not None:
            self.on_title("filled" if not failed else "partial", loop.time() - started)
        log.info("edge %s: filled %d objects of %s (%d failed) in %.2f s", self.plan.me,
                 len(got), title, failed, loop.time() - started)
        return got


def parse_fleet(value: str) -> tuple[str, ...]:
    """``--fleet-edges a,b,c`` as names (empty entries dropped)."""
    return tuple(n for n in (x.strip() for x in value.split(",")) if n)


__all__: Sequence[str] = ("FillPlan", "ProactiveFiller", "parse_fleet", "plan_segments",
                          "variant_paths")
