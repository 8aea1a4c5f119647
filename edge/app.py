"""The edge as an ASGI application (protocol-agnostic: granian speaks h1/h2, hypercorn h3).

Per request: own endpoints (``/healthz``, ``/metrics``, ``POST /purge``, CORS preflight),
else the cache: memory → in-flight fetch → disk → origin, with the decisions taken by
:mod:`edge.policy` and the fetch shared through :mod:`edge.collapse`.

``X-Cache`` values: ``HIT`` (fresh from cache), ``MISS`` (fetched), ``STALE`` (served
stale: stale-while-revalidate or stale-if-error), ``REVALIDATED`` (a 304 from the origin
refreshed the stored copy). A request that joined another request's origin fetch adds
``; collapsed`` (e.g. ``MISS; collapsed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from abrstack import httpsem
from edge.collapse import Head, Inflight
from edge.metrics import EdgeMetrics
from edge.policy import (
    Entry,
    Headers,
    Lookup,
    PathRejected,
    PolicyConfig,
    cache_key,
    clean_headers,
    current_age_s,
    header,
    judge,
    key_query,
    may_serve_stale_on_error,
    normalise_path,
    output_headers,
    parse_cache_control,
    refreshed,
    representation,
    storable,
    validators,
)
from edge.prefetch import prefetch_choice
from edge.shared import SharedFetch
from edge.store import Hit, TieredStore
from edge.upstream import Upstream, UpstreamConfig, UpstreamError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

access_log = logging.getLogger("abrstack.edge.access")
log = logging.getLogger("abrstack.edge")

_CORS_ALLOW_HEADERS = (
    "Range, If-None-Match, If-Modified-Since, CMCD-Object, CMCD-Request, CMCD-Session, "
    "CMCD-Status"
)
_CORS_EXPOSE = "X-Cache, Age, Content-Range, Content-Length, Accept-Ranges, ETag, Via"
_PROTOCOLS = {"1.0": "h1", "1.1": "h1", "2": "h2", "3": "h3"}
FIRST_CHUNK_BYTES = 64 * 1024
STREAM_CHUNK_BYTES = 64 * 1024
"""A stored body larger than this goes out in slices of this size, each handed to the
server only when it took the previous one (backpressure): a client that reads slowly
holds a slice or two of the object, not a copy of all of it."""
CROWD_REQUESTS = 64
PURGE_TARGET_MAX_CHARS = 4096
PREFETCH_CONCURRENCY = 8
"""Prefetches fetching from the origin at once, per worker."""
MAX_QUEUED_PREFETCHES = 64
"""Prefetches waiting or running per worker; hints beyond this are dropped (counted in
``edge_prefetches_dropped_total``), as a prefetch is only ever an optimisation."""


@dataclass(frozen=True)
class EdgeConfig:
    """Everything one edge worker needs; built once by the CLI."""

    upstream: UpstreamConfig
    """Origins and how to talk to them."""
    cache_dir: Path
    """Disk tier folder (also keeps the self-signed certificate)."""
    cache_size_bytes: int = 10 * 2**30
    """Disk tier bound."""
    memory_size_bytes: int = 512 * 2**20
    """Memory tier bound."""
    disk_policy: str = "least-recently-stored"
    """diskcache eviction policy (see :mod:`edge.store`)."""
    prefetch_k: int = 2
    """Segments to prefetch after a segment request (0 disables, CMCD ``nor`` still used)."""
    purge_token: str | None = None
    """Bearer token for ``POST /purge``; None disables purging."""
    send_timeout_s: float = 30.0
    """A response whose client takes no body bytes for this long is cut (the connection or
    stream is closed): a reader that makes no progress holds nothing for longer."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Freshness knobs."""
    worker: str = "0"
    """Worker id used in metrics and logs."""
    via_name: str = "abr-edge"
    """Pseudonym in ``Via``."""
    alt_svc: str | None = None
    """``Alt-Svc`` value added to responses over TLS h1/h2 (hypercorn adds its own on h3)."""


class EdgeApp:
    """The ASGI callable. One instance per worker process."""

    def __init__(self, cfg: EdgeConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.metrics = EdgeMetrics(cfg.worker, cfg.cache_dir / "metrics")
        self.store = TieredStore(cfg.memory_size_bytes, cfg.cache_dir / "objects",
                                 cfg.cache_size_bytes, cfg.disk_policy)
        self.upstream = Upstream(cfg.upstream, clock)
        self.upstream.on_fetch = self.metrics.observe_fetch  # type: ignore[assignment]
        self.inflight: dict[str, Inflight] = {}
        self.inflight_dir = cfg.cache_dir / "inflight"
        self.inflight_dir.mkdir(parents=True, exist_ok=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self._prefetch_slots: asyncio.Semaphore | None = None
        self._prefetching: set[str] = set()
        self._started = False
        self._active = 0

    # ------------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        if self._started:
            return
        self._started = True
        await self.upstream.start()
        self._prefetch_slots = asyncio.Semaphore(PREFETCH_CONCURRENCY)
        self._spawn(self._housekeeping())

    async def shutdown(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.upstream.close()
        self.store.disk.close()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _housekeeping(self) -> None:
        """Cull the disk tier off the request path and refresh tier gauges."""
        while True:
            try:
                await asyncio.to_thread(self.store.disk.cull)
                volume = await asyncio.to_thread(self.store.disk.size_bytes)
                self.metrics.cache_bytes.labels("disk", self.cfg.worker).set(volume)
                self.metrics.cache_bytes.labels("memory", self.cfg.worker).set(
                    self.store.memory.size_bytes)
            except Exception:  # noqa: BLE001 - housekeeping must never die
                log.exception("housekeeping failed")
            for _ in range(2):
                with contextlib.suppress(OSError):  # for the other workers' /metrics
                    self.metrics.publish()
                await asyncio.sleep(1.0)

    # ----------------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if not self._started:
            await self.startup()
        t0 = time.monotonic()
        ctx = _Ctx(scope, send, self.cfg.send_timeout_s)
        if self.cfg.alt_svc and scope.get("scheme") == "https" and ctx.protocol != "h3":
            ctx.alt_svc = self.cfg.alt_svc
        self._active += 1
        try:
            await self._handle(ctx, receive)
        except Exception as exc:  # noqa: BLE001 - translate once, at the boundary
            if not ctx.started:
                log.exception("request failed")
                await ctx.simple(500, "internal error\n")
            else:
                ctx.cut = type(exc).__name__
                self.metrics.cut.labels(ctx.cut, self.cfg.worker).inc()
        finally:
            self._active -= 1
            self._log(ctx, time.monotonic() - t0)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _log(self, ctx: _Ctx, seconds: float) -> None:
        proto = ctx.protocol
        self.metrics.observe_request(proto, ctx.status, ctx.cache, ctx.body_bytes)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "worker": self.cfg.worker, "protocol": proto,
                "http_version": ctx.scope.get("http_version"), "method": ctx.scope["method"],
                "path": ctx.scope.get("path"), "query": ctx.scope.get("query_string", b"").decode("latin-1"),
                "status": ctx.status, "cache": ctx.cache, "bytes": ctx.body_bytes,
                "duration_ms": round(seconds * 1000, 3),
                "client": (ctx.scope.get("client") or [None])[0], **({"cut": ctx.cut} if ctx.cut else {}),
            }, separators=(",", ":")))

    # ------------------------------------------------------------------- routing
    async def _handle(self, ctx: _Ctx, receive: Receive) -> None:
        ctx.receive = receive
        method = ctx.scope["method"]
        raw_path = ctx.scope.get("raw_path") or ctx.scope["path"].encode()
        path_raw = raw_path.split(b"?", 1)[0].decode("latin-1")
        query = ctx.scope.get("query_string", b"").decode("latin-1")
        if path_raw == "/healthz":
            # "status" is this worker's own (it answers); each origin's circuit breaker is
            # reported under its URL, so that "ok" never reads as "every origin is up".
            await ctx.json(200, {"status": "ok", "worker": self.cfg.worker, "origins": {
                o: {"breaker": b.state.value} for o, b in self.upstream.breakers.items()}})
            return
        if path_raw == "/metrics":
            await ctx.send_full(200, [("content-type", "text/plain; version=0.0.4")],
                                self.metrics.render())
            return
        if path_raw == "/purge":
            await self._purge(ctx, receive, query)
            return
        if method == "OPTIONS":
            await ctx.send_full(204, [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", "GET, HEAD, OPTIONS"),
                ("access-control-allow-headers", _CORS_ALLOW_HEADERS),
                ("access-control-max-age", "86400"),
            ], b"")
            return
        if method not in ("GET", "HEAD"):
            await ctx.send_full(405, [("allow", "GET, HEAD, OPTIONS"),
                                      ("content-type", "text/plain")], b"method not allowed\n")
            return
        try:
            path = normalise_path(path_raw)
        except (PathRejected, UnicodeDecodeError):
            await ctx.simple(400, "bad path\n")
            return
        # Only the parameters the origin reads are keyed and forwarded, so that the key and
        # the fetched object agree (README "Cache key"); CMCD stays for the prefetch hints.
        key_params = self.cfg.policy.key_params
        key = cache_key(path, query, key_params)
        req_headers = ctx.headers
        if method == "GET" and path.startswith("/media/"):
            self._prefetch(path, query, req_headers)  # runs alongside this request
        await self._serve_object(ctx, key, path, key_query(path, query, key_params), req_headers)

    # --------------------------------------------------------------------- cache
    async def _serve_object(self, ctx: _Ctx, key: str, path: str, query: str,
                            req_headers: dict[str, str]) -> None:
        now = self.clock()
        self.store.apply_remote_purges(now)
        hit = self.store.lookup_memory(key)
        if hit is None:
            # Not in memory: one task per key looks at the disk tier and, if need be,
            # fetches; every concurrent request follows it (no thundering herd on the
            # disk tier's SQLite index either).
            flight = self.inflight.get(key)
            collapsed = flight is not None
            if flight is None:
                flight = Inflight(key)
                self.inflight[key] = flight
                flight.task = self._spawn(self._load(flight, _path_qs(path, query)))
            await self._follow(ctx, flight, req_headers, collapsed=collapsed)
            return
        verdict = judge(hit.entry, now, self.cfg.policy,
                        parse_cache_control(req_headers.get("cache-control")))
        if verdict.action is Lookup.FRESH:
            await self._send_stored(ctx, hit.entry, hit.body, "HIT", req_headers)
            return
        if verdict.action is Lookup.STALE_REVALIDATE_BACKGROUND:
            if key not in self.inflight:
                self._start_fetch(key, _path_qs(path, query), hit).keep = True
            await self._send_stored(ctx, hit.entry, hit.body, "STALE", req_headers)
            return
        flight = self.inflight.get(key)
        collapsed = flight is not None
        if flight is None:
            flight = self._start_fetch(key, _path_qs(path, query), hit)
        await self._follow(ctx, flight, req_headers, collapsed=collapsed)

    async def _load(self, flight: Inflight, path_qs: str) -> None:
        """Memory missed: try the disk tier, then the origin, for ``flight.key``."""
        key = flight.key
        try:
            # Inline, not in a thread: a miss is one SQLite index read (~50 µs here), a
            # 1 MB hit ~0.4 ms of page-cache reads; a thread hop under load waits for the
            # GIL in 5 ms switch intervals, which cost crowds of misses ~100 ms of TTFB.
            hit = self.store.lookup_disk(key)
        except Exception:  # noqa: BLE001 - a broken disk entry is a miss
            log.exception("disk lookup failed")
            hit = None
        if hit is not None:
            self.store.promote(key, hit)
            verdict = judge(hit.entry, self.clock(), self.cfg.policy)
            if verdict.action is not Lookup.REVALIDATE:
                stale = verdict.action is Lookup.STALE_REVALIDATE_BACKGROUND
                if self.inflight.get(key) is flight:
                    del self.inflight[key]
                flight.resolve(Head("stored", 200, entry=hit.entry, body=hit.body,
                                    x_cache="STALE" if stale else "HIT"))
                if stale:
                    self._start_fetch(key, path_qs, hit).keep = True
                return
            await self._fetch(flight, path_qs, hit)
            return
        shared = SharedFetch(self.inflight_dir, key)
        if shared.try_lock():
            await self._fetch(flight, path_qs, None, shared)
        else:
            flight.remote = True
            await self._mirror(flight, path_qs, shared)

    def _start_fetch(self, key: str, path_qs: str, stale: Hit | None) -> Inflight:
        """Register an in-flight fetch for ``key``. A miss (no stored copy) is also
        collapsed across worker processes (:mod:`edge.shared`); revalidations are not
        (they are cheap conditional requests)."""
        flight = Inflight(key)
        self.inflight[key] = flight
        if stale is None:
            shared = SharedFetch(self.inflight_dir, key)
            if shared.try_lock():
                flight.task = self._spawn(self._fetch(flight, path_qs, None, shared))
            else:
                flight.remote = True
                flight.task = self._spawn(self._mirror(flight, path_qs, shared))
        else:
            flight.task = self._spawn(self._fetch(flight, path_qs, stale))
        return flight

    async def _mirror(self, flight: Inflight, path_qs: str, shared: SharedFetch) -> None:
        """Follow another worker's fetch of ``flight.key`` through the shared files."""
        key = flight.key
        t0 = self.clock()
        up = self.cfg.upstream
        timeout = (up.connect_timeout_s + up.read_timeout_s) * (up.retries + 1) + 5
        try:
            outcome = await shared.mirror(flight, timeout)
            if outcome == "ok":
                head = flight.head.result()
                if head.storable:
                    body = bytes(flight.buf)
                    self.store.memory.put(key, Entry(head.status, head.headers, t0,
                                                     self.clock(), len(body)), body)
            elif outcome == "gone":
                hit = self.store.lookup_disk(key)
                if hit is not None:
                    self.store.promote(key, hit)
                    flight.resolve(Head("stored", 200, entry=hit.entry, body=hit.body,
                                        x_cache="HIT"))
                else:
                    await self._fetch(flight, path_qs, None)
            elif not flight.head.done():
                flight.resolve(Head("error", 502, reason="origin fetch failed"))
        except Exception as exc:  # noqa: BLE001 - reported to the followers
            if not flight.done:
                flight.fail(exc)
        finally:
            if self.inflight.get(key) is flight:
                del self.inflight[key]

    async def _fetch(self, flight: Inflight, path_qs: str, stale: Hit | None,
                     shared: SharedFetch | None = None) -> None:
        """The one origin fetch for ``flight.key`` (runs as its own task)."""
        key = flight.key
        hdrs = {"Accept-Encoding": "identity", "Via": f"1.1 {self.cfg.via_name}"}
        if stale is not None:
            hdrs.update(validators(stale.entry))
        try:
            async with self.upstream.get(path_qs, hdrs) as r:
                now = self.clock()
                raw = r.headers
                got = clean_headers(raw)
                age_in = header(tuple((k.lower(), v) for k, v in raw), "age")
                if age_in:
                    got = got + (("age-in", age_in),)
                if r.status == 304 and stale is not None:
                    entry = refreshed(stale.entry, got, r.request_time_s, r.response_time_s)
                    self.store.memory.update_entry(key, entry)
                    await asyncio.to_thread(self.store.disk.update_entry, key, entry)
                    flight.resolve(Head("stored", 200, entry=entry, body=stale.body,
                                        x_cache="REVALIDATED"))
                    return
                if r.status >= 500 and stale is not None and may_serve_stale_on_error(
                        stale.entry, now, self.cfg.policy):
                    flight.resolve(Head("stored", 200, entry=stale.entry, body=stale.body,
                                        x_cache="STALE"))
                    return
                shareable = storable("GET", r.status, got)
                # Never store a body whose end only the connection's close marks: a cut
                # connection looks the same (RFC 9112 §6.3 item 8; §8 "incomplete messages").
                keep = shareable and r.end_confirmed
                cl_raw = header(tuple((k.lower(), v) for k, v in raw), "content-length")
                cl = int(cl_raw) if cl_raw and cl_raw.isdigit() else None
                head = Head("body", r.status, headers=got, content_length=cl,
                            shareable=shareable or r.status >= 400, storable=keep)
                flight.resolve(head)
                if shared is not None:
                    shared.publish_head(head)
                async for chunk in r.chunks():
                    flight.append(chunk)
                    if shared is not None:
                        shared.append(chunk)
                if cl is not None and len(flight.buf) != cl:
                    raise ConnectionError("origin body shorter than Content-Length")
                if shared is not None:
                    shared.finish(len(flight.buf))
                body = bytes(flight.buf)
                entry = Entry(r.status, got, r.request_time_s, r.response_time_s, len(body))
                if keep:
                    # In memory at once (and out of the in-flight map) so that the next
                    # request is a plain HIT; the disk write follows in a thread.
                    self.store.memory.put(key, entry, body)
                if self.inflight.get(key) is flight:
                    del self.inflight[key]
                flight.finish()
                if keep and r.status == 200:  # negative entries stay in memory only
                    stored = await asyncio.to_thread(self.store.disk.put, key, entry, body)
                    self.store.memory.update_entry(key, stored)
        except UpstreamError as exc:
            if shared is not None:
                shared.fail()
            if stale is not None and may_serve_stale_on_error(stale.entry, self.clock(),
                                                               self.cfg.policy):
                flight.resolve(Head("stored", 200, entry=stale.entry, body=stale.body,
                                    x_cache="STALE"))
            else:
                flight.resolve(Head("error", exc.status, reason=exc.reason))
        except (asyncio.CancelledError, Exception) as exc:
            if shared is not None:
                shared.fail()
            flight.fail(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if shared is not None:
                shared.cleanup()  # after the disk write: late requests find the object
            if self.inflight.get(key) is flight:
                del self.inflight[key]

    async def _follow(self, ctx: _Ctx, flight: Inflight, req_headers: dict[str, str],
                      collapsed: bool) -> None:
        """Relay ``flight`` to this client until it is sent or the client hangs up; a
        fetch whose every reader hung up is cancelled (:meth:`_abandon`)."""
        relay = asyncio.ensure_future(self._relay(ctx, flight, req_headers, collapsed))
        gone = asyncio.ensure_future(_disconnected(ctx.receive))
        try:
            await asyncio.wait((relay, gone), return_when=asyncio.FIRST_COMPLETED)
            if not relay.done():
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await relay
                ctx.cut = ctx.cut or "ClientGone"
                return
            relay.result()
        finally:
            if not relay.done():
                relay.cancel()
            gone.cancel()

    @contextlib.contextmanager
    def _reading(self, flight: Inflight) -> Iterator[None]:
        """Count a reader of ``flight``; the last one to hang up (not to finish: a range
        reader done early) abandons it."""
        flight.readers += 1
        hung_up = True
        try:
            yield
            hung_up = False
        finally:
            flight.readers -= 1
            if hung_up and flight.readers == 0 and not flight.done:
                self._abandon(flight)

    def _abandon(self, flight: Inflight) -> None:
        """Every client of this fetch left: cancel it, unless it must finish anyway (a
        prefetch, a background revalidation) or another worker mirrors it."""
        task = flight.task
        if flight.keep or task is None or task.done():
            return
        if not flight.remote and SharedFetch(self.inflight_dir, flight.key).has_followers():
            return
        self.metrics.abandoned.labels(self.cfg.worker).inc()
        task.cancel()

    async def _relay(self, ctx: _Ctx, flight: Inflight, req_headers: dict[str, str],
                     collapsed: bool) -> None:
        with self._reading(flight):
            await self._relay_one(ctx, flight, req_headers, collapsed)

    async def _relay_one(self, ctx: _Ctx, flight: Inflight, req_headers: dict[str, str],
                         collapsed: bool) -> None:
        try:
            head = await asyncio.shield(flight.head)
        except Exception:  # noqa: BLE001 - the fetch broke before any header
            await ctx.simple(502, "origin failed\n", cache="MISS")
            return
        collapsed = collapsed or flight.remote  # known once the head is in
        if collapsed:
            self.metrics.collapsed.labels(self.cfg.worker).inc()
        tag = "; collapsed" if collapsed else ""
        if head.kind == "stored":
            assert head.entry is not None
            await self._send_stored(ctx, head.entry, head.body, head.x_cache + tag, req_headers)
            return
        if head.kind == "error":
            await ctx.simple(head.status, head.reason + "\n", cache="MISS" + tag)
            return
        if collapsed and not head.shareable:
            # RFC 9111 §4: a private/no-store answer must not be shared: fetch again.
            flight = self._start_fetch_uncollapsed(flight.key, ctx)
            await self._relay(ctx, flight, req_headers, collapsed=False)
            return
        base = flight.out_headers
        if base is None:  # once per fetch, not once per collapsed reader
            base = list(output_headers(Entry(head.status, head.headers, 0, 0, 0)))
            _cors(base)
            flight.out_headers = base
        hs = [*base, ("age", "0"), ("x-cache", "MISS" + tag), ("via", self._via(ctx))]
        start, end, status = 0, None, head.status
        if head.status == 200 and head.content_length is not None:
            hs.append(("accept-ranges", "bytes"))
            # RFC 9110 §13.2.2, §14: the same table as the origin (abrstack.httpsem).
            lm = httpsem.parse_http_date(header(head.headers, "last-modified"))
            rep = httpsem.Representation(  # §8.8.2.2: strong when a second older than now
                head.content_length, header(head.headers, "etag"), lm,
                lm is not None and int(self.clock()) >= lm + 1)
            decision = httpsem.decide(ctx.scope["method"], req_headers, rep)
            if decision.status == httpsem.RANGE_NOT_SATISFIABLE:
                await self._send_416(ctx, head.content_length, "MISS" + tag)
                return
            if not decision.sends_body:
                await self._send_unsent(ctx, decision.status, hs, "MISS" + tag)
                return
            rng = decision.byte_range
            if rng is not None:
                status, start, end = 206, rng.first, rng.last + 1
                hs += [("content-range", rng.content_range(head.content_length)),
                       ("content-length", str(rng.length_bytes))]
            else:
                hs.append(("content-length", str(head.content_length)))
        elif head.content_length is not None:
            hs.append(("content-length", str(head.content_length)))
        ctx.cache = "MISS" + tag
        await ctx.start(status, hs)
        if ctx.scope["method"] == "HEAD":
            await ctx.body(b"", more=False)
            return
        async for chunk in flight.follow(start, end, STREAM_CHUNK_BYTES):
            await ctx.body(chunk, more=True)
        await ctx.body(b"", more=False)

    def _start_fetch_uncollapsed(self, key: str, ctx: _Ctx) -> Inflight:
        flight = Inflight(key)  # not registered: nobody else may join it
        path = ctx.scope["path"]
        query = key_query(path, ctx.scope.get("query_string", b"").decode("latin-1"),
                          self.cfg.policy.key_params)  # the same parameters as the shared fetch
        path_qs = _path_qs(path, query)
        flight.task = self._spawn(self._fetch_private(flight, path_qs))
        return flight

    async def _fetch_private(self, flight: Inflight, path_qs: str) -> None:
        try:
            async with self.upstream.get(path_qs, {"Accept-Encoding": "identity"}) as r:
                cl = r.headers and dict((k.lower(), v) for k, v in r.headers).get("content-length")
                flight.resolve(Head("body", r.status, headers=clean_headers(r.headers),
                                    content_length=int(cl) if cl and cl.isdigit() else None))
                async for chunk in r.chunks():
                    flight.append(chunk)
                flight.finish()
        except UpstreamError as exc:
            flight.resolve(Head("error", exc.status, reason=exc.reason))
        except Exception as exc:  # noqa: BLE001
            flight.fail(exc)

    async def _send_stored(self, ctx: _Ctx, entry: Entry, body: bytes, x_cache: str,
                           req_headers: dict[str, str]) -> None:
        fixed = entry.__dict__.get("_out_headers")
        if fixed is None:  # the entry's own headers, computed once per stored response
            fixed = list(output_headers(entry))
            _cors(fixed)
            entry.__dict__["_out_headers"] = fixed
        hs = [*fixed, ("age", str(int(current_age_s(entry, self.clock())))),
              ("x-cache", x_cache), ("via", self._via(ctx))]
        ctx.cache = x_cache
        status, payload = entry.status, body
        if entry.status == 200:
            hs.append(("accept-ranges", "bytes"))
            # RFC 9110 §13.2.2, §14: the same table as the origin (abrstack.httpsem).
            decision = httpsem.decide(ctx.scope["method"], req_headers, representation(entry))
            if decision.status == httpsem.RANGE_NOT_SATISFIABLE:
                await self._send_416(ctx, len(body), x_cache)
                return
            if not decision.sends_body:
                await self._send_unsent(ctx, decision.status, hs, x_cache)
                return
            rng = decision.byte_range
            if rng is not None:
                status = 206
                payload = body[rng.first:rng.last + 1]
                hs.append(("content-range", rng.content_range(len(body))))
        if len(payload) <= STREAM_CHUNK_BYTES or ctx.scope["method"] == "HEAD":
            await ctx.send_full(status, hs, payload)
            return
        hs = [h for h in hs if h[0] != "content-length"]
        hs.append(("content-length", str(len(payload))))
        await ctx.start(status, hs)
        view = memoryview(payload)
        crowd = self._active >= CROWD_REQUESTS
        # In a crowd (many requests in progress) a small first slice, then a turn for the
        # other requests, so that all of them get their first bytes early (TTFB).
        at = FIRST_CHUNK_BYTES if crowd else STREAM_CHUNK_BYTES
        await ctx.body(bytes(view[:at]), more=True)
        if crowd:
            await asyncio.sleep(0)
        while at < len(payload):
            nxt = at + STREAM_CHUNK_BYTES
            await ctx.body(bytes(view[at:nxt]), more=nxt < len(payload))
            at = nxt

    async def _send_416(self, ctx: _Ctx, size: int, x_cache: str) -> None:
        ctx.cache = x_cache
        # RFC 9110 §15.5.17: Content-Range names the current length.
        await ctx.send_full(416, [("content-range", f"bytes */{size}"), ("x-cache", x_cache),
                                  ("cache-control", "no-cache")], b"")

    async def _send_unsent(self, ctx: _Ctx, status: int, hs: list[tuple[str, str]],
                           x_cache: str) -> None:
        """A 304 (RFC 9110 §15.4.5: the validators and caching fields) or a 412."""
        ctx.cache = x_cache
        if status == httpsem.NOT_MODIFIED:
            keep = {"etag", "last-modified", "cache-control", "expires", "vary", "age",
                    "x-cache", "via"}
            await ctx.send_full(304, [h for h in hs if h[0] in keep
                                      or h[0].startswith("access-control")], b"")
            return
        await ctx.send_full(status, [("cache-control", "no-cache"), ("x-cache", x_cache),
                                     ("via", self._via(ctx))], b"")

    def _via(self, ctx: _Ctx) -> str:
        return f"{ctx.scope.get('http_version', '1.1')} {self.cfg.via_name}"

    # ------------------------------------------------------------------ prefetch
    def _prefetch(self, path: str, query: str, req_headers: dict[str, str]) -> None:
        for target in prefetch_choice(path, query, req_headers, self.cfg.prefetch_k):
            key = cache_key(target, "")
            if key in self.inflight or key in self._prefetching or key in self.store.memory.index:
                continue
            if len(self._prefetching) >= MAX_QUEUED_PREFETCHES:
                self.metrics.prefetches_dropped.labels(self.cfg.worker).inc()
                return
            self._prefetching.add(key)
            self._spawn(self._prefetch_one(key, target))

    async def _prefetch_one(self, key: str, path: str) -> None:
        assert self._prefetch_slots is not None
        try:
            async with self._prefetch_slots:
                if key in self.inflight or key in self.store.memory.index:
                    return
                self.metrics.prefetches.labels(self.cfg.worker).inc()
                flight = Inflight(key)
                flight.keep = True
                self.inflight[key] = flight
                await self._load(flight, path)  # holds the slot until the body is in
        finally:
            self._prefetching.discard(key)

    # --------------------------------------------------------------------- purge
    async def _purge(self, ctx: _Ctx, receive: Receive, query: str) -> None:
        if ctx.scope["method"] != "POST":
            await ctx.send_full(405, [("allow", "POST")], b"")
            return
        token = self.cfg.purge_token
        auth = ctx.headers.get("authorization", "")
        if not token:
            await ctx.simple(403, "purge is disabled (no --purge-token-file or ABR_EDGE_PURGE_TOKEN)\n")
            return
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            await ctx.send_full(401, [("www-authenticate", 'Bearer realm="abr-edge"'),
                                      ("content-type", "text/plain")], b"bad or missing token\n")
            return
        body = await _read_body(receive, 64 * 1024)
        args: object = dict(parse_qsl(query))
        if body:
            try:
                args = json.loads(body)
            except (ValueError, RecursionError):
                args = None
        if not isinstance(args, dict) or len(args) != 1 or not set(args) <= {"path", "prefix"}:
            await ctx.simple(400, 'give exactly one of {"path": "/..."} or {"prefix": "/..."}\n')
            return
        (kind, target), = args.items()
        if not isinstance(target, str) or not target.startswith("/") \
                or len(target) > PURGE_TARGET_MAX_CHARS:
            await ctx.simple(400, f"{kind} must be a string starting with / "
                                  f"of at most {PURGE_TARGET_MAX_CHARS} characters\n")
            return
        # The same normalisation as requests, so that every spelling of a path purges the
        # object a request for it would have been served from (and the refused ones are 400).
        raw_path, _, q = target.partition("?")
        try:
            path = normalise_path(raw_path)
        except (PathRejected, UnicodeDecodeError):
            await ctx.simple(400, "bad path\n")
            return
        prefix = kind == "prefix"
        target = cache_key(path, q, self.cfg.policy.key_params) if q or not prefix else path
        n = await asyncio.to_thread(self.store.purge, target, prefix)
        await ctx.json(200, {"purged": n, "target": target, "prefix": prefix})


# ------------------------------------------------------------------- helpers

class SlowReader(Exception):
    """The client made no progress reading a response (it is cut, and logged so)."""


class _Ctx:
    """One request's response state (so the access log sees what was sent)."""

    def __init__(self, scope: Scope, send: Send, send_timeout_s: float = 30.0) -> None:
        self.scope = scope
        self._send = send
        self.send_timeout_s = send_timeout_s
        self.status = 0
        self.cache = "NONE"
        self.body_bytes = 0
        self.started = False
        self.cut = ""
        self.alt_svc: str | None = None
        self.receive: Receive | None = None
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in scope.get("headers", [])}

    @property
    def protocol(self) -> str:
        return _PROTOCOLS.get(self.scope.get("http_version", "1.1"), "h1")

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.started = True
        if self.alt_svc:
            headers = [*headers, ("alt-svc", self.alt_svc)]
        await self._send({"type": "http.response.start", "status": status,
                          "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                      for k, v in headers]})

    async def body(self, data: bytes, more: bool) -> None:
        """Send body bytes; waits while the server's buffer for this response is full, at
        most ``send_timeout_s`` (then :class:`SlowReader`)."""
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await self._send({"type": "http.response.body", "body": data, "more_body": more})
        except TimeoutError:
            raise SlowReader(f"the client took no bytes for {self.send_timeout_s:g} s") from None
        self.body_bytes += len(data)

    async def send_full(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        headers = [h for h in headers if h[0] != "content-length"]
        headers.append(("content-length", str(len(data))))
        await self.start(status, headers)
        await self.body(b"" if self.scope["method"] == "HEAD" else data, more=False)

    async def simple(self, status: int, text: str, cache: str | None = None) -> None:
        if cache is not None:
            self.cache = cache
        await self.send_full(status, [("content-type", "text/plain; charset=utf-8"),
                                      ("x-cache", self.cache if cache else "NONE")],
                             text.encode())

    async def json(self, status: int, obj: object) -> None:
        await self.send_full(status, [("content-type", "application/json"),
                                      ("cache-control", "no-store")],
                             json.dumps(obj).encode())


def _cors(hs: list[tuple[str, str]]) -> None:
    """CORS for browser players: allow any origin, expose the edge's headers (merged with
    what the origin exposes); drop the origin's Accept-Ranges (the edge sets its own)."""
    exposed = [t.strip() for k, v in hs if k == "access-control-expose-headers"
               for t in v.split(",") if t.strip()]
    names = {k for k, _ in hs}
    hs[:] = [h for h in hs if h[0] not in ("access-control-expose-headers", "accept-ranges")]
    if "access-control-allow-origin" not in names:
        hs.append(("access-control-allow-origin", "*"))
    for t in _CORS_EXPOSE.split(", "):
        if t.lower() not in {e.lower() for e in exposed}:
            exposed.append(t)
    hs.append(("access-control-expose-headers", ", ".join(exposed)))


def _path_qs(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


async def _disconnected(receive: Receive | None) -> None:
    """Return when the client hangs up (ASGI ``http.disconnect``)."""
    if receive is None:
        await asyncio.Event().wait()
        return
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        if msg["type"] == "http.request" and not msg.get("more_body"):
            continue  # the (empty) request body; the next message is the hang-up
        await asyncio.sleep(0.05)  # pragma: no cover - a server that repeats itself


async def _read_body(receive: Receive, limit: int) -> bytes:
    out = bytearray()
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            break
        out += msg.get("body", b"")
        if len(out) > limit:
            break
        if not msg.get("more_body"):
            break
    return bytes(out[:limit])


def make_app(cfg: EdgeConfig) -> EdgeApp:
    """Build an edge worker's ASGI app."""
    os.makedirs(cfg.cache_dir, exist_ok=True)
    return EdgeApp(cfg)


__all__ = ["EdgeApp", "EdgeConfig", "Headers", "make_app"]
