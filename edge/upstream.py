"""The edge's origin client: timeouts, retries with backoff, a circuit breaker per
origin, and failover across several origins (shell around :mod:`edge.policy`).

What opens an origin's circuit is what says the *origin* is unwell: a refused or broken
connection, a timeout, a 502/503/504. What concerns one URL only (a URL that cannot be
built, a 4xx, a response that does not parse) is that URL's answer and never counts,
so one bad URL cannot take the origin away from every other request. Waiting for one
of the connection pool's slots is the edge's own congestion, not the origin's: it is
bounded by ``pool_wait_s`` and answered 503 without touching the breaker.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from edge.breaker import BreakerState, CircuitBreaker, backoff_s
from edge.clock import SYSTEM_CLOCK, Clock
from edge.errors import UpstreamError


@dataclass(frozen=True)
class UpstreamConfig:
    """How the edge talks to its origins."""

    origins: tuple[str, ...]
    """Base URLs, in order of preference (failover goes down the list)."""
    connect_timeout_s: float = 2.0
    """TCP connect timeout per attempt."""
    read_timeout_s: float = 10.0
    """Longest silence while reading headers or a body chunk."""
    retries: int = 2
    """Extra attempts for a GET after a connect error, timeout or 502/503/504."""
    backoff_base_s: float = 0.05
    """First retry delay ceiling; doubles per attempt."""
    backoff_cap_s: float = 1.0
    """Largest retry delay."""
    breaker_failures: int = 5
    """Consecutive failures that open an origin's circuit."""
    breaker_open_s: float = 5.0
    """How long an open circuit fails fast before a half-open probe."""
    connections_per_origin: int = 256
    """Origin connections open at once, per origin and worker."""
    pool_wait_s: float = 5.0
    """Longest wait for a free origin connection (then 503; not an origin failure)."""
    fetch_deadline_s: float = 60.0
    """Longest a whole fetch (headers and body) may take: a trickling origin cannot hold
    a connection and a fetch for ever (a 1 MB segment at 1 Mbit/s takes 8 s)."""


@dataclass
class UpstreamResponse:
    """An origin's answer: status, raw headers, and the body as a chunk stream."""

    status: int
    headers: list[tuple[str, str]]
    origin: str
    request_time_s: float
    response_time_s: float
    _resp: aiohttp.ClientResponse = field(repr=False)

    deadline: float = float("inf")
    """Loop time by which the body must be in (``fetch_deadline_s``)."""

    async def chunks(self, size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """The body; raises TimeoutError past the fetch deadline."""
        loop = asyncio.get_running_loop()
        content = self._resp.content
        while True:
            left = self.deadline - loop.time()
            if left <= 0:
                raise TimeoutError("origin fetch deadline passed")
            async with asyncio.timeout(left):
                chunk = await content.read(size)
            if not chunk:
                return
            yield chunk

    @property
    def end_confirmed(self) -> bool:
        """Whether the body's end is known from the framing (Content-Length or chunked),
        not only from the connection closing (which a cut connection also does)."""
        te = self._resp.headers.get("Transfer-Encoding", "").lower()
        return self._resp.content_length is not None or "chunked" in te


_RETRY_STATUSES = frozenset({502, 503, 504})


class Upstream:
    """Fetches from the origins. One per worker process (holds a ClientSession)."""

    def __init__(self, cfg: UpstreamConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.cfg = cfg
        self.clock = clock
        self.breakers = {o: CircuitBreaker(cfg.breaker_failures, cfg.breaker_open_s)
                         for o in cfg.origins}
        self._slots = {o: asyncio.Semaphore(cfg.connections_per_origin) for o in cfg.origins}
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        self.on_fetch = None  # set by the app: callable(origin, outcome, seconds)

    async def start(self) -> None:
        # sock_connect, not connect: aiohttp's ``connect`` also covers waiting for a pool
        # slot, which is bounded by our own slots (pool_wait_s) and is not the origin's fault.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.cfg.connect_timeout_s,
            sock_read=self.cfg.read_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            timeout=timeout, auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def circuit_open(self) -> bool:
        """True when every origin's circuit is open (requests would fail fast)."""
        return all(b.state is BreakerState.OPEN for b in self.breakers.values())

    def _note(self, origin: str, outcome: str, started: float) -> None:
        cb = self.on_fetch
        if cb is not None:
            cb(origin, outcome, asyncio.get_running_loop().time() - started)  # type: ignore[operator]

    @asynccontextmanager
    async def get(self, path_qs: str, headers: Mapping[str, str]) -> AsyncIterator[UpstreamResponse]:
        """GET ``path_qs`` from the first origin that answers; retries with backoff.

        Yields once the status and headers are in; the body is read through
        :meth:`UpstreamResponse.chunks` inside the ``async with``. Raises
        :class:`UpstreamError` (502 for refused/broken/open circuits, 504 for timeouts).
        """
        session = self._session
        if session is None:
            raise UpstreamError(502, "edge is not started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.fetch_deadline_s
        last = UpstreamError(502, "no origin available (circuit open)")
        attempt = 0
        while attempt <= self.cfg.retries:
            if attempt:
                await asyncio.sleep(backoff_s(attempt, self.cfg.backoff_base_s,
                                              self.cfg.backoff_cap_s, self._rng.random()))
            attempt += 1
            tried_any = False
            for origin in self.cfg.origins:
                breaker = self.breakers[origin]
                if not breaker.allow(self.clock()):
                    continue
                tried_any = True
                slot = self._slots[origin]
                try:
                    async with asyncio.timeout(self.cfg.pool_wait_s):
                        await slot.acquire()
                except TimeoutError:
                    breaker.release_probe()
                    last = UpstreamError(503, f"edge busy: no connection to {origin} free")
                    continue
                try:
                    started = loop.time()
                    req_t = self.clock()
                    try:
                        async with asyncio.timeout_at(deadline):
                            resp = await session.get(origin.rstrip("/") + path_qs,
                                                     headers=dict(headers), allow_redirects=False)
                    except TimeoutError:
                        breaker.record_failure(self.clock())
                        self._note(origin, "timeout", started)
                        last = UpstreamError(504, f"origin {origin} timed out")
                        continue
                    except (aiohttp.InvalidURL, ValueError) as exc:
                        # this URL only (RFC 3986 / header syntax): no retry, not the origin's fault
                        breaker.release_probe()
                        self._note(origin, "bad-request", started)
                        raise UpstreamError(502, f"cannot request this URL: {exc}") from exc
                    except aiohttp.ClientResponseError as exc:
                        # the origin's answer to this URL did not parse: this URL's problem
                        breaker.release_probe()
                        self._note(origin, "bad-response", started)
                        raise UpstreamError(502, f"origin {origin} sent a malformed response") \
                            from exc
                    except aiohttp.ClientError as exc:
                        breaker.record_failure(self.clock())
                        self._note(origin, "error", started)
                        last = UpstreamError(502, f"origin {origin} failed: {exc.__class__.__name__}")
                        continue
                    if resp.status in _RETRY_STATUSES:
                        breaker.record_failure(self.clock())
                        self._note(origin, str(resp.status), started)
                        resp.release()
                        last = UpstreamError(502, f"origin {origin} answered {resp.status}")
                        continue
                    breaker.record_success()
                    self._note(origin, str(resp.status), started)
                    try:
                        yield UpstreamResponse(
                            resp.status, [(k, v) for k, v in resp.headers.items()], origin,
                            req_t, self.clock(), resp, deadline)
                    finally:
                        resp.release()
                    return
                finally:
                    slot.release()
            if not tried_any:
                break  # every circuit is open: fail fast, no backoff
        raise last
