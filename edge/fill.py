"""The edge's miss path as one state machine: how a key gets into the cache.

A request first asks :func:`admit` (memory verdict × a fill in flight → :class:`Admit`):
serve from memory, join the key's fill, or start one. A fill (:class:`Filler`) then moves
through the steps below, each a method returning an :class:`Outcome`; the only place the
path is written down is :data:`TRANSITIONS`::

    DISK ──FOUND──────────────────────────────────────────────▶ DONE
     │ ──MUST_REVALIDATE──▶ FETCH (conditional, this worker only)
     └──ABSENT──▶ LOCK ──WON──▶ FETCH ──BODY──▶ STORE ──STORED──▶ DONE
                   │              └──ANSWERED (304, stale-if-error, error)──▶ DONE
                   └──HELD──▶ MIRROR ──COMPLETE──▶ STORE (memory only)
                                 │ ──FAILED──▶ DONE
                                 └──GONE──▶ RECHECK ──FOUND──▶ DONE
                                               └──ABSENT──▶ FETCH (alone)

A fill that revalidates a copy from memory starts at FETCH. Every reader follows the
fill's :class:`~edge.collapse.Inflight` (its head, then its body as it arrives); the fill
leaves the in-flight map at one place (:meth:`Filler._unregister`), as soon as its answer
is known to be in memory or not to be kept, and when it ends whatever happened.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from edge.clock import Clock
from edge.collapse import Head, HeadKind, Inflight
from edge.errors import UpstreamError
from edge.policy import (
    Entry,
    Lookup,
    PolicyConfig,
    clean_headers,
    header,
    judge,
    may_serve_stale_on_error,
    refreshed,
    storable,
    validators,
)
from edge.shared import Mirrored, SharedFetch
from edge.store import Hit, TieredStore
from edge.upstream import Upstream

log = logging.getLogger("abrstack.edge")


class Admit(enum.Enum):
    """What a request does first (:func:`admit`)."""

    SERVE = "serve"
    """The memory copy is fresh (or already being revalidated): send it."""
    SERVE_AND_REVALIDATE = "serve-and-revalidate"
    """Send the memory copy now and revalidate it in the background (RFC 5861 §3)."""
    JOIN = "join"
    """Follow the key's fill in flight (request collapsing)."""
    FILL = "fill"
    """Start a fill at :attr:`Step.DISK`."""
    REVALIDATE = "revalidate"
    """Start a fill that revalidates the memory copy (:attr:`Step.FETCH`)."""


_ADMIT: dict[tuple[Lookup | None, bool], Admit] = {
    (None, False): Admit.FILL,
    (None, True): Admit.JOIN,
    (Lookup.FRESH, False): Admit.SERVE,
    (Lookup.FRESH, True): Admit.SERVE,
    (Lookup.STALE_REVALIDATE_BACKGROUND, False): Admit.SERVE_AND_REVALIDATE,
    (Lookup.STALE_REVALIDATE_BACKGROUND, True): Admit.SERVE,
    (Lookup.REVALIDATE, False): Admit.REVALIDATE,
    (Lookup.REVALIDATE, True): Admit.JOIN,
}


def admit(memory: Lookup | None, in_flight: bool) -> Admit:
    """The first move for a request: ``memory`` is the policy's verdict on the memory copy
    (None when there is none), ``in_flight`` whether the key has a fill running."""
    return _ADMIT[memory, in_flight]


class Step(enum.Enum):
    """Where a fill is."""

    DISK = "disk"
    """Look in this machine's disk tier."""
    LOCK = "lock"
    """Take the cross-worker lock for the key (:mod:`edge.shared`)."""
    MIRROR = "mirror"
    """Follow the worker that holds the lock."""
    RECHECK = "recheck"
    """That worker went away without an answer: look on disk once more."""
    FETCH = "fetch"
    """Ask the origin (conditionally when a stored copy is being revalidated)."""
    STORE = "store"
    """Keep the complete body: memory at once, then disk."""
    DONE = "done"


class Outcome(enum.Enum):
    """What a step found."""

    FOUND = "found"
    MUST_REVALIDATE = "must-revalidate"
    ABSENT = "absent"
    WON = "won"
    HELD = "held"
    COMPLETE = "complete"
    FAILED = "failed"
    GONE = "gone"
    BODY = "body"
    ANSWERED = "answered"
    STORED = "stored"


TRANSITIONS: dict[tuple[Step, Outcome], Step] = {
    (Step.DISK, Outcome.FOUND): Step.DONE,
    (Step.DISK, Outcome.MUST_REVALIDATE): Step.FETCH,
    (Step.DISK, Outcome.ABSENT): Step.LOCK,
    (Step.LOCK, Outcome.WON): Step.FETCH,
    (Step.LOCK, Outcome.HELD): Step.MIRROR,
    (Step.MIRROR, Outcome.COMPLETE): Step.STORE,
    (Step.MIRROR, Outcome.FAILED): Step.DONE,
    (Step.MIRROR, Outcome.GONE): Step.RECHECK,
    (Step.RECHECK, Outcome.FOUND): Step.DONE,
    (Step.RECHECK, Outcome.ABSENT): Step.FETCH,
    (Step.FETCH, Outcome.BODY): Step.STORE,
    (Step.FETCH, Outcome.ANSWERED): Step.DONE,
    (Step.STORE, Outcome.STORED): Step.DONE,
}
"""The miss path: (step, what it found) → next step. Anything else is a bug."""


@dataclass
class Fill:
    """One fill's working state, carried from step to step."""

    flight: Inflight
    path_qs: str
    """What to ask the origin for (path and the keyed query)."""
    stale: Hit | None = None
    """The stored copy being revalidated (FETCH sends its validators)."""
    lock: SharedFetch | None = None
    """The cross-worker lock: held (this worker fetches for all) or followed (MIRROR)."""
    entry: Entry | None = None
    """The complete answer's metadata, for STORE."""
    keep: bool = False
    """STORE keeps it (a shareable answer whose end was confirmed)."""
    mirrored: bool = False
    """The answer came from another worker, which writes the disk tier itself."""
    via: str = ""
    """The ``Via`` to send upstream."""
    step: Step = Step.DISK


class Filler:
    """Runs fills for one worker; owns the in-flight map (key → :class:`Inflight`)."""

    def __init__(self, store: TieredStore, upstream: Upstream, policy: PolicyConfig,
                 inflight_dir: Path, clock: Clock, via: str,
                 spawn: Callable[[Awaitable[None]], asyncio.Task[None]],
                 on_step: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.upstream = upstream
        self.policy = policy
        self.inflight_dir = inflight_dir
        self.clock = clock
        self.via = via
        self.spawn = spawn
        self.on_step = on_step
        """Told (step, outcome) after each step (the edge counts them in its metrics)."""
        self.inflight: dict[str, Inflight] = {}
        self._steps: dict[Step, Callable[[Fill], Awaitable[Outcome]]] = {
            Step.DISK: self._disk, Step.LOCK: self._lock, Step.MIRROR: self._mirror,
            Step.RECHECK: self._recheck, Step.FETCH: self._fetch, Step.STORE: self._store,
        }

    # ----------------------------------------------------------------- entry points
    def start(self, key: str, path_qs: str, stale: Hit | None = None,
              keep: bool = False, via_in: str | None = None) -> Inflight:
        """Register a fill for ``key`` and run it as its own task (a client that hangs up
        does not cancel it; :meth:`abandon` does, when every reader left)."""
        flight = self.register(key, keep)
        flight.task = self.spawn(self.run(flight, path_qs, stale, via_in))
        return flight

    def register(self, key: str, keep: bool = False) -> Inflight:
        flight = Inflight(key)
        flight.keep = keep
        self.inflight[key] = flight
        return flight

    async def run(self, flight: Inflight, path_qs: str, stale: Hit | None = None,
                  via_in: str | None = None) -> None:
        """Drive one fill from DISK (or FETCH, to revalidate ``stale``) to DONE; ``via_in``
        is the ``Via`` of the request that started it (forwarded, with this edge added)."""
        fill = Fill(flight, path_qs, stale, via=self._via(via_in),
                    step=Step.DISK if stale is None else Step.FETCH)
        try:
            while fill.step is not Step.DONE:
                outcome = await self._steps[fill.step](fill)
                if self.on_step is not None:
                    self.on_step(fill.step.value, outcome.value)
                fill.step = TRANSITIONS[fill.step, outcome]
        except (asyncio.CancelledError, Exception) as exc:
            if fill.lock is not None and not flight.remote:
                fill.lock.fail()
            if not flight.done:
                flight.fail(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if fill.lock is not None and not flight.remote:
                fill.lock.cleanup()  # after the disk write: late requests find the object
            self._unregister(flight)

    def abandon(self, flight: Inflight) -> bool:
        """Every client of ``flight`` left: cancel it, unless it must finish anyway (a
        prefetch, a background revalidation) or another worker mirrors it. True when
        cancelled."""
        task = flight.task
        if flight.keep or task is None or task.done():
            return False
        if not flight.remote and SharedFetch(self.inflight_dir, flight.key,
                                             self.clock).has_followers():
            return False
        task.cancel()
        return True

    def _via(self, via_in: str | None) -> str:
        """The ``Via`` sent upstream: the request's own hops, then this edge, so that a
        chain of edges that loops back is seen by the edge it comes back to."""
        return f"{via_in[:1024]}, {self.via}" if via_in else self.via

    def _unregister(self, flight: Inflight) -> None:
        if self.inflight.get(flight.key) is flight:
            del self.inflight[flight.key]

    def _answer(self, fill: Fill, head: Head) -> None:
        """Resolve the fill with an answer that carries no new body (stored or error)."""
        self._unregister(fill.flight)
        fill.flight.resolve(head)

    def _stored(self, fill: Fill, hit: Hit | Entry, body: bytes = b"", x_cache: str = "HIT") -> None:
        entry = hit.entry if isinstance(hit, Hit) else hit
        data = hit.body if isinstance(hit, Hit) else body
        self._answer(fill, Head(HeadKind.STORED, 200, entry=entry, body=data, x_cache=x_cache))

    def _stale_if_error(self, fill: Fill) -> bool:
        """RFC 5861 §4: answer with the stale copy when the origin failed, if allowed."""
        stale = fill.stale
        if stale is None or not may_serve_stale_on_error(stale.entry, self.clock(), self.policy):
            return False
        self._stored(fill, stale, x_cache="STALE")
        return True

    def _lookup_disk(self, key: str) -> Hit | None:
        try:
            # Inline, not in a thread: a miss is one SQLite index read (~50 µs here), a
            # 1 MB hit ~0.4 ms of page-cache reads; a thread hop under load waits for the
            # GIL in 5 ms switch intervals, which cost crowds of misses ~100 ms of TTFB.
            hit = self.store.lookup_disk(key)
        except Exception:  # noqa: BLE001 - a broken disk entry is a miss
            log.exception("disk lookup failed")
            return None
        if hit is not None:
            self.store.promote(key, hit)
        return hit

    # ------------------------------------------------------------------------ steps
    async def _disk(self, fill: Fill) -> Outcome:
        key = fill.flight.key
        hit = self._lookup_disk(key)
        if hit is None:
            return Outcome.ABSENT
        action = judge(hit.entry, self.clock(), self.policy).action
        if action is Lookup.REVALIDATE:
            fill.stale = hit
            return Outcome.MUST_REVALIDATE
        background = action is Lookup.STALE_REVALIDATE_BACKGROUND
        self._stored(fill, hit, x_cache="STALE" if background else "HIT")
        if background:
            self.start(key, fill.path_qs, stale=hit, keep=True)
        return Outcome.FOUND

    async def _lock(self, fill: Fill) -> Outcome:
        fill.lock = SharedFetch(self.inflight_dir, fill.flight.key, self.clock)
        if fill.lock.try_lock():
            return Outcome.WON
        fill.flight.remote = True
        return Outcome.HELD

    async def _mirror(self, fill: Fill) -> Outcome:
        assert fill.lock is not None
        flight, up = fill.flight, self.upstream.cfg
        t0 = self.clock()
        result = await fill.lock.mirror(
            flight, (up.connect_timeout_s + up.read_timeout_s) * (up.retries + 1) + 5)
        if result is Mirrored.GONE:
            return Outcome.GONE
        if result is Mirrored.FAILED:
            if not flight.head.done():
                self._answer(fill, Head(HeadKind.ERROR, 502, reason="origin fetch failed"))
            return Outcome.FAILED
        head = flight.head.result()
        fill.entry = Entry(head.status, head.headers, t0, self.clock(), len(flight.buf))
        fill.keep, fill.mirrored = head.storable, True
        return Outcome.COMPLETE

    async def _recheck(self, fill: Fill) -> Outcome:
        hit = self._lookup_disk(fill.flight.key)
        if hit is None:
            fill.lock = None  # fetch alone: nobody follows this worker now
            return Outcome.ABSENT
        self._stored(fill, hit)
        return Outcome.FOUND

    async def _fetch(self, fill: Fill) -> Outcome:
        flight, stale, lock = fill.flight, fill.stale, fill.lock
        hdrs = {"Accept-Encoding": "identity", "Via": fill.via}
        if stale is not None:
            hdrs.update(validators(stale.entry))
        try:
            async with self.upstream.get(fill.path_qs, hdrs) as r:
                raw = r.headers
                got = clean_headers(raw)
                lowered = tuple((k.lower(), v) for k, v in raw)
                age_in = header(lowered, "age")
                if age_in:
                    got = got + (("age-in", age_in),)
                if r.status == 304 and stale is not None:
                    entry = refreshed(stale.entry, got, r.request_time_s, r.response_time_s)
                    self.store.memory.update_entry(flight.key, entry)
                    await asyncio.to_thread(self.store.disk.update_entry, flight.key, entry)
                    self._stored(fill, entry, stale.body, "REVALIDATED")
                    return Outcome.ANSWERED
                if r.status >= 500 and self._stale_if_error(fill):
                    return Outcome.ANSWERED
                shareable = storable("GET", r.status, got)
                # Never store a body whose end only the connection's close marks: a cut
                # connection looks the same (RFC 9112 §6.3 item 8; §8 "incomplete messages").
                fill.keep = shareable and r.end_confirmed
                cl_raw = header(lowered, "content-length")
                cl = int(cl_raw) if cl_raw and cl_raw.isdigit() else None
                head = Head(HeadKind.BODY, r.status, headers=got, content_length=cl,
                            shareable=shareable or r.status >= 400, storable=fill.keep)
                flight.resolve(head)
                if lock is not None:
                    lock.publish_head(head)
                async for chunk in r.chunks():
                    flight.append(chunk)
                    if lock is not None:
                        lock.append(chunk)
                if cl is not None and len(flight.buf) != cl:
                    raise ConnectionError("origin body shorter than Content-Length")
                if lock is not None:
                    lock.finish(len(flight.buf))
                fill.entry = Entry(r.status, got, r.request_time_s, r.response_time_s,
                                   len(flight.buf))
                return Outcome.BODY
        except UpstreamError as exc:
            if lock is not None:
                lock.fail()
            if not self._stale_if_error(fill):
                self._answer(fill, Head(HeadKind.ERROR, exc.status, reason=exc.reason))
            return Outcome.ANSWERED

    async def _store(self, fill: Fill) -> Outcome:
        flight, entry = fill.flight, fill.entry
        assert entry is not None
        body = bytes(flight.buf)
        if fill.keep:
            # In memory at once (and out of the in-flight map) so that the next request
            # is a plain HIT; the disk write follows in a thread.
            self.store.memory.put(flight.key, entry, body)
        self._unregister(flight)
        flight.finish()
        if fill.keep and not fill.mirrored and entry.status == 200:  # negative: memory only
            stored = await asyncio.to_thread(self.store.disk.put, flight.key, entry, body)
            self.store.memory.update_entry(flight.key, stored)
        return Outcome.STORED

    # -------------------------------------------------------------- private answers
    def private(self, key: str, path_qs: str, via_in: str | None = None) -> Inflight:
        """A fetch for one reader only (RFC 9111 §4: a private or no-store answer that a
        collapsed reader may not share is fetched again, for it alone): not registered."""
        flight = Inflight(key)
        flight.task = self.spawn(self._fetch_private(flight, path_qs, self._via(via_in)))
        return flight

    async def _fetch_private(self, flight: Inflight, path_qs: str, via: str) -> None:
        try:
            async with self.upstream.get(path_qs, {"Accept-Encoding": "identity",
                                                   "Via": via}) as r:
                cl = header(tuple((k.lower(), v) for k, v in r.headers), "content-length")
                flight.resolve(Head(HeadKind.BODY, r.status, headers=clean_headers(r.headers),
                                    content_length=int(cl) if cl and cl.isdigit() else None))
                async for chunk in r.chunks():
                    flight.append(chunk)
                flight.finish()
        except UpstreamError as exc:
            flight.resolve(Head(HeadKind.ERROR, exc.status, reason=exc.reason))
        except Exception as exc:  # noqa: BLE001 - reported to the one reader
            flight.fail(exc)


__all__ = ["TRANSITIONS", "Admit", "Fill", "Filler", "Outcome", "Step", "admit"]
