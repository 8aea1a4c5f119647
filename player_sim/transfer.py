"""The real player's transfers, as the session core sees them (the I/O half of `abr play`).

* :class:`Clock`: the session clock, ``(loop.time() - start) x speed``.
* :class:`Transfer`: one response body: size bound, shaping to the trace
  (:class:`~player_sim.shaping.Shaper`), kept text, and a stop for abandonment.
* :class:`InFlight`: one of the core's requests in flight: it tells the core the first
  byte, answers the progress checks the core asks for on timers of the session clock, and
  stops the transfer the core abandons. Nothing here decides; the core does.
"""

from __future__ import annotations

import asyncio

from player_sim.session import (
    Abandon,
    Action,
    BytesReceived,
    OfferProgress,
    RequestFailed,
    ResponseStarted,
    SessionCore,
)
from player_sim.shaping import Shaper

SHAPING_SLACK_S = 0.004
"""Shaping debt (wall seconds) tolerated before sleeping; paid at the end of each body."""


class Clock:
    """The session clock: virtual seconds, ``(loop.time() - start) x speed``."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.loop: asyncio.AbstractEventLoop | None = None
        self.t0 = 0.0

    def start(self) -> None:
        """(Re)start the clock at 0 on the running loop."""
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()

    def now(self) -> float:
        assert self.loop is not None, "the session is not running"
        return (self.loop.time() - self.t0) * self.speed

    def wall_delay(self, t_s: float) -> float:
        """Wall seconds until the session clock reads ``t_s``."""
        return (t_s - self.now()) / self.speed

    async def sleep_until(self, t_s: float) -> None:
        delay = self.wall_delay(t_s)
        if delay > 0:
            await asyncio.sleep(delay)


class Transfer:
    """One response body: bounds, shaping, keeping text bodies; stoppable (abandonment)."""

    def __init__(self, clock: Clock, shaper: Shaper | None, start: float, keep: bool, limit_bytes: int,
                 watch: InFlight | None) -> None:
        self.clock, self.shaper, self.start, self.keep = clock, shaper, start, keep
        self.limit_bytes = limit_bytes
        self.watch = watch
        self.overflow = False
        """The body went beyond ``limit_bytes`` (reading stopped)."""
        self.stopped = False
        """Stopped by :meth:`stop` (reading ends at once)."""
        self.parts: list[bytes] = []
        self.received = 0
        self.first: list[float] = []
        self.ready_s = 0.0
        """When the trace lets the last byte received so far be delivered."""
        self._run_offset = 0  # bytes received before the shaper's current run
        self._run = -1
        self._pause: asyncio.Future[None] | None = None
        if watch is not None:
            watch.transfer = self

    async def on_chunk(self, chunk: bytes) -> bool:
        now = self.clock.now()
        if self.stopped:
            return False
        if not self.first:
            self.first.append(now)
            if self.watch is not None:
                self.watch.first_byte(now, now - self.start)
        self.received += len(chunk)
        if self.received > self.limit_bytes:
            self.overflow = True
            return False
        if self.keep:
            self.parts.append(chunk)
        if self.shaper is not None:
            self.ready_s = self.shaper.take(now, len(chunk), first=self.received == len(chunk))
            if self.shaper.runs != self._run:
                self._run, self._run_offset = self.shaper.runs, self.received - len(chunk)
            # Sleep only when the debt is worth a timer: HTTP/3 hands over ~1.3-KB chunks.
            delay = self.clock.wall_delay(self.ready_s)
            if delay > SHAPING_SLACK_S and not self.stopped:
                assert self.clock.loop is not None
                self._pause = fut = self.clock.loop.create_future()
                timer = self.clock.loop.call_later(delay, _resolve, fut)
                try:
                    await fut
                finally:
                    timer.cancel()
                    self._pause = None
        return not self.stopped

    def delivered_bytes(self, now_s: float) -> float:
        """Bytes of the body delivered by ``now_s`` (shaped: those the trace has carried)."""
        if self.shaper is None or self._run != self.shaper.runs:
            return float(self.received)
        return self._run_offset + self.shaper.delivered_in_run(now_s)

    def stop(self) -> None:
        """End the transfer at once (the client cancels the request)."""
        self.stopped = True
        if self.shaper is not None:
            self.shaper.end_run(self.clock.now())
        if self._pause is not None:
            _resolve(self._pause)


class InFlight:
    """A request of the session core's in flight: its first byte, the progress checks it asks
    for (timers on the session clock), abandonment and retries, fed to the core as they happen."""

    def __init__(self, clock: Clock, core: SessionCore) -> None:
        self.clock, self.core = clock, core
        self.transfer: Transfer | None = None
        """The current attempt's transfer (set by :class:`Transfer`)."""
        self.after: list[Action] = []
        """The core's actions for after the request."""
        self.abandoned = False
        self._started = False
        self._timer: asyncio.TimerHandle | None = None

    def first_byte(self, now_s: float, latency_s: float) -> None:
        if not self._started:  # once per attempt (a redirect's body is not the response)
            self._started = True
            self._take(self.core.handle(ResponseStarted(now_s, latency_s)))

    @property
    def ready_s(self) -> float:
        """When the shaper delivers the current transfer's last byte (0: unshaped)."""
        t = self.transfer
        return t.ready_s if t is not None and t.shaper is not None and not t.stopped else 0.0

    def retried(self, now_s: float) -> None:
        self.close()
        self._started = False
        self._take(self.core.handle(RequestFailed(now_s)))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _take(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, OfferProgress):
                assert self.clock.loop is not None
                self._timer = self.clock.loop.call_later(max(0.0, self.clock.wall_delay(action.at_s)), self._check,
                                                         action.at_s)
                continue
            if isinstance(action, Abandon):
                self.abandoned = True
                if self.transfer is not None:
                    self.transfer.stop()
            self.after.append(action)

    def _check(self, at_s: float) -> None:
        self._timer = None
        if self.transfer is not None and not self.abandoned:
            now = max(self.clock.now(), at_s)  # a timer may fire a rounding early
            self._take(self.core.handle(BytesReceived(now, self.transfer.delivered_bytes(now))))


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
