"""The edge as an ASGI application (protocol-agnostic: granian speaks h1/h2, the QUIC server h3).

Per request: own endpoints (``/healthz``, ``/metrics``, ``POST /purge``, ``POST /beacon``
(:mod:`edge.beacon`), CORS preflight),
else the cache. Where an object comes from is the miss path's state machine
(:mod:`edge.fill`: memory → in-flight → disk → cross-worker lock/mirror → origin → store);
freshness is :mod:`edge.policy`; what is answered (range, 304/412/416, CORS, headers) is
:func:`edge.respond.shape`; this module routes, relays and logs.

``X-Cache`` values: ``HIT`` (fresh from cache), ``MISS`` (fetched), ``STALE`` (served
stale: stale-while-revalidate or stale-if-error), ``REVALIDATED`` (a 304 from the origin
refreshed the stored copy). A request that joined another request's origin fetch adds
``; collapsed`` (e.g. ``MISS; collapsed``).

An edge's upstream may be another edge: a shield tier is configuration (``--origin`` names
the shield), not other code. ``Via`` names each edge it passed (``--via-name``); a request
whose ``Via`` already names this edge is a forwarding loop and is answered 508.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import os
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from edge.beacon import Beacons
from edge.clock import SYSTEM_CLOCK, Clock
from edge.collapse import HeadKind, Inflight
from edge.errors import PathRejected
from edge.exchange import Exchange, Receive, Scope, Send, disconnected, read_body
from edge.fill import Admit, Filler, admit
from edge.health import Counters
from edge.metrics import EdgeMetrics
from edge.policy import (
    Entry,
    Headers,
    Lookup,
    PolicyConfig,
    cache_key,
    current_age_s,
    judge,
    key_query,
    normalise_path,
    parse_cache_control,
    representation,
    streamed_representation,
)
from edge.prefetch import prefetch_choice
from edge.respond import CORS_ALLOW_HEADERS, Reply, base_headers, shape
from edge.store import TieredStore
from edge.upstream import Upstream, UpstreamConfig

access_log = logging.getLogger("abrstack.edge.access")
log = logging.getLogger("abrstack.edge")

FIRST_CHUNK_BYTES = 64 * 1024
STREAM_CHUNK_BYTES = 64 * 1024
"""A stored body larger than this goes out in slices of this size, each handed to the
server only when it took the previous one (backpressure): a client that reads slowly
holds a slice or two of the object, not a copy of all of it."""
WHOLE_BODY_BYTES = 128 * 1024
"""A stored body up to this size goes out in one message (one send, no slice copies):
most segments of the lower rungs, and the 100 KB case of bench/edge.py."""
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
    """This edge's pseudonym in ``Via`` (RFC 9110 §7.6.3); give each edge of a fleet its
    own, so that a request that comes back to it is recognised as a loop (508)."""
    alt_svc: str | None = None
    """``Alt-Svc`` value added to responses over TLS h1/h2 (the h3 shell adds its own)."""
    redis_url: str | None = None
    """Event bus: worker 0 purges replaced/deleted titles from ``titles``, every worker
    publishes its ``edge.health`` heartbeat (None: no bus)."""
    name: str = ""
    """This edge's name in the fleet (heartbeats, steering pathway); empty: ``via_name``."""
    fleet_edges: tuple[str, ...] = ()
    """Every edge's name in this fleet (proactive fill's HRW node set; empty: no fill)."""
    fill_segments: int = 0
    """Proactive fill: first K segments of every rendition of a published title this edge
    is assigned (0: off)."""
    fill_replicas: int = 1
    """Proactive fill: edges per title."""


class EdgeApp:
    """The ASGI callable. One instance per worker process."""

    def __init__(self, cfg: EdgeConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.cfg = cfg
        self.clock = clock
        self.metrics = EdgeMetrics(cfg.worker, cfg.cache_dir / "metrics", clock)
        self.store = TieredStore(cfg.memory_size_bytes, cfg.cache_dir / "objects",
                                 cfg.cache_size_bytes, cfg.disk_policy, clock)
        self.upstream = Upstream(cfg.upstream, clock)
        self.upstream.on_fetch = self.metrics.observe_fetch  # type: ignore[assignment]
        inflight_dir = cfg.cache_dir / "inflight"
        inflight_dir.mkdir(parents=True, exist_ok=True)
        self.filler = Filler(self.store, self.upstream, cfg.policy, inflight_dir, clock,
                             f"1.1 {cfg.via_name}", self._spawn, self.metrics.observe_step)
        self.inflight = self.filler.inflight
        self._tasks: set[asyncio.Task[None]] = set()
        self._prefetch_slots: asyncio.Semaphore | None = None
        self._prefetching: set[str] = set()
        self._started = False
        self._active = 0
        self.beacons = Beacons(cfg.redis_url, cfg.via_name, cfg.worker, self.metrics.registry)

    # ------------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        if self._started:
            return
        self._started = True
        await self.upstream.start()
        self._prefetch_slots = asyncio.Semaphore(PREFETCH_CONCURRENCY)
        self._spawn(self._housekeeping())
        self.beacons.start(self._spawn)  # POST /beacon -> topic qoe, off the serving path
        if self.cfg.redis_url and self.cfg.worker == "0":
            # One consumer per edge node: purges reach the other workers through the store's
            # purge log. Off the serving path: a bus that is down only delays purges.
            from edge.events import consume_titles

            self._spawn(consume_titles(self.cfg.redis_url, self.store, self.cfg.via_name,
                                       self._proactive()))
        if self.cfg.redis_url:
            from edge.health import publish_health

            self._spawn(publish_health(self.cfg.redis_url, self.cfg.name or self.cfg.via_name,
                                       self.cfg.worker, self))

    def _titles_held(self) -> int:
        """Blocking: how many titles have an object in the cache (``fleet status``)."""
        keys = set(self.store.memory.keys())
        keys.update(itertools.islice(self.store.disk.keys(), 200_000))
        return len({k.split("/")[2] for k in keys if k.startswith("/media/") and k.count("/") > 2})

    def _proactive(self) -> Any:
        """The proactive filler when this edge is part of a fleet (else None)."""
        if not self.cfg.fleet_edges or self.cfg.fill_segments <= 0:
            return None
        from edge.proactive import FillPlan, ProactiveFiller

        plan = FillPlan(self.cfg.via_name, self.cfg.fleet_edges, self.cfg.fill_segments,
                        self.cfg.fill_replicas)
        return ProactiveFiller(plan, self.warm, self.metrics.observe_fill_object,
                               self.metrics.observe_fill_title)

    async def warm(self, path: str) -> bytes | None:
        """Bring ``path`` into the cache through the miss path, with no client (proactive
        fill); its body when it is a 200, else None."""
        key = cache_key(path, "", self.cfg.policy.key_params)
        hit = self.store.lookup_memory(key)
        if hit is None:
            flight = self.inflight.get(key)
            if flight is None:
                flight = self.filler.register(key, keep=True)
                await self.filler.run(flight, _path_qs(path, ""))
            else:
                with contextlib.suppress(Exception):  # its failure is reported as None
                    if (await flight.head).kind is HeadKind.BODY:
                        async for _ in flight.follow():
                            pass
            hit = self.store.lookup_memory(key)
            if hit is None:
                hit = await asyncio.to_thread(self.store.lookup_disk, key)
        return hit.body if hit is not None and hit.entry.status == 200 else None

    async def shutdown(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.upstream.close()
        self.store.disk.close()

    async def counters(self) -> Counters:
        """This worker's totals now, for its ``edge.health`` heartbeat (:mod:`edge.health`)."""
        disk = await asyncio.to_thread(self.store.disk.size_bytes)
        m = self.metrics
        return Counters(self.clock(), m.requests_total, m.body_bytes_total, self._active,
                        m.hit_ratio_value, disk + self.store.memory.size_bytes,
                        self.cfg.cache_size_bytes)

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
                self.metrics.active.labels(self.cfg.worker).set(self._active)
                if self.cfg.worker == "0":
                    titles = await asyncio.to_thread(self._titles_held)
                    self.metrics.titles.labels(self.cfg.worker).set(titles)
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
        t0 = asyncio.get_running_loop().time()
        ctx = Exchange(scope, send, self.cfg.send_timeout_s)
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
            self._log(ctx, asyncio.get_running_loop().time() - t0)

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

    def _log(self, ctx: Exchange, seconds: float) -> None:
        proto = ctx.protocol
        self.metrics.observe_request(proto, ctx.status, ctx.cache, ctx.body_bytes)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(json.dumps({
                "ts": round(self.clock(), 3), "worker": self.cfg.worker, "protocol": proto,
                "http_version": ctx.scope.get("http_version"), "method": ctx.scope["method"],
                "path": ctx.scope.get("path"), "query": ctx.scope.get("query_string", b"").decode("latin-1"),
                "status": ctx.status, "cache": ctx.cache, "bytes": ctx.body_bytes,
                "duration_ms": round(seconds * 1000, 3),
                "client": (ctx.scope.get("client") or [None])[0], **({"cut": ctx.cut} if ctx.cut else {}),
            }, separators=(",", ":")))

    # ------------------------------------------------------------------- routing
    async def _handle(self, ctx: Exchange, receive: Receive) -> None:
        ctx.receive = receive
        method = ctx.method
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
        if path_raw == "/beacon":
            await self.beacons.handle(ctx, receive)
            return
        if method == "OPTIONS":
            await ctx.send_full(204, [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", "GET, HEAD, OPTIONS"),
                ("access-control-allow-headers", CORS_ALLOW_HEADERS),
                ("access-control-max-age", "86400"),
            ], b"")
            return
        if method not in ("GET", "HEAD"):
            await ctx.send_full(405, [("allow", "GET, HEAD, OPTIONS"),
                                      ("content-type", "text/plain")], b"method not allowed\n")
            return
        via_in = ctx.headers.get("via")
        if via_in and self.cfg.via_name in via_names(via_in):
            await ctx.simple(508, f"loop detected: this request already passed "
                                  f"{self.cfg.via_name} (Via: {via_in[:200]})\n")
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
        if method == "GET" and path.startswith("/media/"):
            self._prefetch(path, query, ctx.headers)  # runs alongside this request
        await self._serve(ctx, key, _path_qs(path, key_query(path, query, key_params)), via_in)

    # --------------------------------------------------------------------- cache
    async def _serve(self, ctx: Exchange, key: str, path_qs: str, via_in: str | None) -> None:
        now = self.clock()
        self.store.apply_remote_purges(now)
        hit = self.store.lookup_memory(key)
        verdict = None if hit is None else judge(
            hit.entry, now, self.cfg.policy, parse_cache_control(ctx.headers.get("cache-control")))
        flight = self.inflight.get(key)
        move = admit(None if verdict is None else verdict.action, flight is not None)
        if move is Admit.SERVE or move is Admit.SERVE_AND_REVALIDATE:
            assert hit is not None
            if move is Admit.SERVE_AND_REVALIDATE:
                self.filler.start(key, path_qs, stale=hit, keep=True, via_in=via_in)
            x_cache = "HIT" if verdict is not None and verdict.action is Lookup.FRESH else "STALE"
            await self._send_stored(ctx, hit.entry, hit.body, x_cache)
            return
        collapsed = move is Admit.JOIN
        if flight is None:
            flight = self.filler.start(key, path_qs, stale=hit if move is Admit.REVALIDATE
                                       else None, via_in=via_in)
        await self._follow(ctx, flight, path_qs, via_in, collapsed=collapsed)

    async def _follow(self, ctx: Exchange, flight: Inflight, path_qs: str, via_in: str | None,
                      collapsed: bool) -> None:
        """Relay ``flight`` to this client until it is sent or the client hangs up; a
        fetch whose every reader hung up is cancelled (:meth:`Filler.abandon`)."""
        relay = asyncio.ensure_future(self._relay(ctx, flight, path_qs, via_in, collapsed))
        gone = asyncio.ensure_future(disconnected(ctx.receive))
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
            if hung_up and flight.readers == 0 and not flight.done \
                    and self.filler.abandon(flight):
                self.metrics.abandoned.labels(self.cfg.worker).inc()

    async def _relay(self, ctx: Exchange, flight: Inflight, path_qs: str, via_in: str | None,
                     collapsed: bool) -> None:
        with self._reading(flight):
            try:
                head = await asyncio.shield(flight.head)
            except Exception:  # noqa: BLE001 - the fetch broke before any header
                await ctx.simple(502, "origin failed\n", cache="MISS")
                return
            collapsed = collapsed or flight.remote  # known once the head is in
            if collapsed:
                self.metrics.collapsed.labels(self.cfg.worker).inc()
            tag = "; collapsed" if collapsed else ""
            if head.kind is HeadKind.STORED:
                assert head.entry is not None
                await self._send_stored(ctx, head.entry, head.body, head.x_cache + tag)
                return
            if head.kind is HeadKind.ERROR:
                await ctx.simple(head.status, head.reason + "\n", cache="MISS" + tag)
                return
            if not collapsed or head.shareable:
                await self._send_streamed(ctx, flight, "MISS" + tag)
                return
        # RFC 9111 §4: a private/no-store answer must not be shared: fetch again, alone.
        await self._relay(ctx, self.filler.private(flight.key, path_qs, via_in), path_qs,
                          via_in, collapsed=False)

    async def _send_streamed(self, ctx: Exchange, flight: Inflight, x_cache: str) -> None:
        """A response as it streams in from the fill (the head is known)."""
        head = flight.head.result()
        base = flight.out_headers
        if base is None:  # once per fetch, not once per collapsed reader
            base = flight.out_headers = base_headers(head.headers)
        size = head.content_length
        rep = None if head.status != 200 or size is None else \
            streamed_representation(head.headers, size, self.clock())
        reply = shape(ctx.method, ctx.headers, head.status, base, size, rep, 0, x_cache,
                      self._via(ctx))
        ctx.cache = x_cache
        if not reply.has_body:
            await ctx.send_full(reply.status, reply.headers, b"")
            return
        await ctx.start(reply.status, reply.headers)
        if ctx.method == "HEAD":
            await ctx.body(b"", more=False)
            return
        async for chunk in flight.follow(reply.first, reply.end, STREAM_CHUNK_BYTES):
            await ctx.body(chunk, more=True)
        await ctx.body(b"", more=False)

    async def _send_stored(self, ctx: Exchange, entry: Entry, body: bytes, x_cache: str) -> None:
        base = entry.__dict__.get("_out_headers")
        if base is None:  # the entry's own headers, computed once per stored response
            base = entry.__dict__["_out_headers"] = base_headers(entry.headers)
        rep = entry.__dict__.get("_representation")
        if rep is None and entry.status == 200:  # likewise (it parses Last-Modified)
            rep = entry.__dict__["_representation"] = representation(entry)
        reply = shape(ctx.method, ctx.headers, entry.status, base, len(body), rep,
                      int(current_age_s(entry, self.clock())), x_cache, self._via(ctx))
        ctx.cache = x_cache
        await self._send_slices(ctx, reply, body)

    async def _send_slices(self, ctx: Exchange, reply: Reply, body: bytes) -> None:
        payload = body[reply.first:reply.end] if reply.has_body else b""
        if len(payload) <= WHOLE_BODY_BYTES or ctx.method == "HEAD":
            await ctx.start(reply.status, reply.headers)
            await ctx.body(b"" if ctx.method == "HEAD" else payload, more=False)
            return
        await ctx.start(reply.status, reply.headers)
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

    def _via(self, ctx: Exchange) -> str:
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
            self._spawn(self._prefetch_one(key, target, req_headers.get("via")))

    async def _prefetch_one(self, key: str, path: str, via_in: str | None) -> None:
        assert self._prefetch_slots is not None
        try:
            async with self._prefetch_slots:
                if key in self.inflight or key in self.store.memory.index:
                    return
                self.metrics.prefetches.labels(self.cfg.worker).inc()
                flight = self.filler.register(key, keep=True)
                await self.filler.run(flight, path, via_in=via_in)  # holds the slot until the body is in
        finally:
            self._prefetching.discard(key)

    # --------------------------------------------------------------------- purge
    async def _purge(self, ctx: Exchange, receive: Receive, query: str) -> None:
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
        body = await read_body(receive, 64 * 1024)
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


def via_names(via: str) -> list[str]:
    """The pseudonyms (or hosts) a ``Via`` field names (RFC 9110 §7.6.3), comments dropped."""
    names = []
    for hop in via.split(","):
        parts = hop.split("(", 1)[0].split()
        if len(parts) >= 2:
            names.append(parts[1])
    return names


def _path_qs(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def make_app(cfg: EdgeConfig) -> EdgeApp:
    """Build an edge worker's ASGI app."""
    os.makedirs(cfg.cache_dir, exist_ok=True)
    return EdgeApp(cfg)


__all__ = ["EdgeApp", "EdgeConfig", "Headers", "make_app", "via_names"]
