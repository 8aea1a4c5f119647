"""Mahimahi's link model, packet by packet (pure; the caller owns the clock, no I/O).

Mahimahi's ``mm-link`` (Netravali et al., USENIX ATC 2015) replays a trace of *delivery
opportunities*: one millisecond time stamp per line, each letting up to 1500 bytes leave the
queue; the trace loops with the period of its last time stamp, and an opportunity that finds
the queue empty is lost. Packets wait in a drop-tail queue bounded in bytes or packets; a
packet larger than what one opportunity carries takes several (``link_queue.cc``). Around the
link we add ``mm-loss`` (independent random loss on arrival) and ``mm-delay`` (a fixed one-way
propagation delay after the link).

Other trace formats become opportunities by :func:`opportunities_from_trace`: the trace's
cumulative-bytes curve gets one opportunity each time it crosses another 1500 bytes, rounded
up to the next whole millisecond. A Mahimahi file is taken as it is (:func:`parse_opportunities`).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from enum import Enum

from player_sim.errors import PlayerError
from player_sim.traces import MAHIMAHI_PACKET_BYTES, Trace, mahimahi_stamps, parse_trace


@dataclass(frozen=True)
class Opportunities:
    """Delivery opportunities of one looping trace."""

    name: str
    """Trace name, for logs and reports."""
    stamps_ms: tuple[int, ...]
    """Sorted opportunity times within one pass, milliseconds."""
    period_ms: int
    """Length of one pass; the trace repeats after it."""

    @property
    def mean_bps(self) -> float:
        """Mean capacity of one pass at 1500 bytes per opportunity."""
        return len(self.stamps_ms) * MAHIMAHI_PACKET_BYTES * 8 / (self.period_ms / 1000)


def opportunities_from_trace(trace: Trace) -> Opportunities:
    """One opportunity each time the trace's cumulative bytes pass another 1500 bytes."""
    stamps: list[int] = []
    t0_ms = 0.0
    carried = 0.0  # bytes delivered since the last opportunity
    for d_s, bps in zip(trace.durations_s, trace.bandwidths_bps, strict=True):
        d_ms = d_s * 1000
        rate = bps / 8 / 1000  # bytes per ms
        if rate > 0:
            t = t0_ms + (MAHIMAHI_PACKET_BYTES - carried) / rate
            while t <= t0_ms + d_ms:
                stamps.append(max(1, math.ceil(t - 1e-9)))
                t += MAHIMAHI_PACKET_BYTES / rate
            carried = MAHIMAHI_PACKET_BYTES - (t - t0_ms - d_ms) * rate
        t0_ms += d_ms
    period = max(1, round(t0_ms))
    stamps = [min(s, period) for s in stamps]
    if not stamps:
        raise PlayerError(f"trace {trace.name} carries less than one 1500-byte packet per pass")
    return Opportunities(trace.name, tuple(stamps), period)


def parse_opportunities(name: str, text: str) -> Opportunities:
    """Mahimahi time stamps as they are; cooked and sabre traces converted."""
    first = text.lstrip().split("\n", 1)[0].split()
    if len(first) == 1 and first[0].isdigit():
        stamps = mahimahi_stamps(name, text)
        if stamps != sorted(stamps) or stamps[-1] <= 0:
            raise PlayerError(f"trace {name} time stamps must rise and end after 0 ms")
        return Opportunities(name, tuple(stamps), stamps[-1])
    return opportunities_from_trace(parse_trace(name, text))


class Queue(Enum):
    """Queue disciplines of the link."""

    DROPTAIL = "droptail"
    CODEL = "codel"


CODEL_TARGET_MS = 5.0
"""CoDel's target sojourn time (RFC 8289 §4.4)."""
CODEL_INTERVAL_MS = 100.0
"""CoDel's interval (RFC 8289 §4.5)."""


@dataclass(frozen=True)
class LinkConfig:
    """One direction of the emulated link."""

    delay_ms: float = 0.0
    """One-way propagation delay added after the link."""
    loss: float = 0.0
    """Probability that a packet is dropped on arrival (independent)."""
    queue_bytes: int | None = None
    """Drop-tail bound in bytes; None for no byte bound."""
    queue_packets: int | None = None
    """Drop-tail bound in packets; None for no packet bound (Mahimahi's default is unbounded)."""
    queue: Queue = Queue.DROPTAIL
    """Drop-tail only, or CoDel at the head as well (within the same bounds)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise PlayerError(f"loss must be in [0, 1), got {self.loss}")
        if self.delay_ms < 0:
            raise PlayerError(f"delay must not be negative, got {self.delay_ms} ms")
        for label, bound in (("queue bytes", self.queue_bytes), ("queue packets", self.queue_packets)):
            if bound is not None and bound <= 0:
                raise PlayerError(f"{label} must be positive, got {bound}")


@dataclass(frozen=True)
class PacketLogged:
    """What happened to one packet."""

    t_ms: float
    """When it left the queue (or was dropped)."""
    size_bytes: int
    """IP packet size."""
    queue_delay_ms: float | None
    """Time spent in the queue; None when dropped."""
    dropped: str | None
    """``"loss"`` (random), ``"queue"`` (drop-tail), or None when delivered."""


class Direction:
    """One direction of the link: loss, drop-tail queue, trace opportunities, delay.

    ``arrive`` a packet at ``now_ms``; ``advance`` to ``now_ms`` to get the packets that
    reach the far end by then; ``next_event_ms`` says when to call ``advance`` next.
    """

    def __init__(self, opps: Opportunities, config: LinkConfig, seed: int = 0) -> None:
        self.opps = opps
        self.config = config
        self._rng = random.Random(seed)
        self._queue: deque[tuple[float, bytes]] = deque()
        self._queued_bytes = 0
        self._head_sent = 0  # bytes of the head packet already carried by earlier opportunities
        self._next_opp = 0  # absolute index: pass * len(stamps) + i
        self._flight: deque[tuple[float, bytes]] = deque()
        # CoDel state (RFC 8289 §5): when sojourn first stayed above target, dropping mode.
        self._first_above: float | None = None
        self._dropping = False
        self._drop_next = 0.0
        self._count = 0
        self.log: list[PacketLogged] = []
        """Every packet's fate, in order (the caller may drain it)."""

    def _opp_ms(self, k: int) -> int:
        n = len(self.opps.stamps_ms)
        return (k // n) * self.opps.period_ms + self.opps.stamps_ms[k % n]

    def _first_opp_at_or_after(self, t_ms: float) -> int:
        n = len(self.opps.stamps_ms)
        passes = int(t_ms // self.opps.period_ms)
        i = bisect_left(self.opps.stamps_ms, t_ms - passes * self.opps.period_ms)
        return passes * n + i

    def arrive(self, packet: bytes, now_ms: float) -> bool:
        """Offer a packet to the link; False when it is dropped."""
        self._serve(now_ms)
        if self.config.loss and self._rng.random() < self.config.loss:
            self.log.append(PacketLogged(now_ms, len(packet), None, "loss"))
            return False
        c = self.config
        if (c.queue_packets is not None and len(self._queue) + 1 > c.queue_packets) or (
            c.queue_bytes is not None and self._queued_bytes + len(packet) > c.queue_bytes
        ):
            self.log.append(PacketLogged(now_ms, len(packet), None, "queue"))
            return False
        if not self._queue:
            # Opportunities that found the queue empty are lost (mm-link).
            self._next_opp = max(self._next_opp, self._first_opp_at_or_after(math.floor(now_ms) + 1e-9))
        self._queue.append((now_ms, packet))
        self._queued_bytes += len(packet)
        return True

    def advance(self, now_ms: float) -> list[bytes]:
        """Serve every opportunity up to ``now_ms``; the packets that reach the far end by then."""
        self._serve(now_ms)
        out = []
        while self._flight and self._flight[0][0] <= now_ms:
            out.append(self._flight.popleft()[1])
        return out

    def _serve(self, now_ms: float) -> None:
        while self._queue and self._opp_ms(self._next_opp) <= now_ms:
            at = self._opp_ms(self._next_opp)
            self._next_opp += 1
            budget = MAHIMAHI_PACKET_BYTES
            while self._queue and budget > 0:
                arrived, packet = self._queue[0]
                need = len(packet) - self._head_sent
                if need > budget:
                    self._head_sent += budget
                    break
                budget -= need
                self._head_sent = 0
                self._queue.popleft()
                self._queued_bytes -= len(packet)
                if self.config.queue is Queue.CODEL and self._codel_drops(at - arrived, float(at)):
                    self.log.append(PacketLogged(float(at), len(packet), at - arrived, "codel"))
                    continue
                self.log.append(PacketLogged(float(at), len(packet), max(0.0, at - arrived), None))
                self._flight.append((at + self.config.delay_ms, packet))

    def _codel_drops(self, sojourn_ms: float, now: float) -> bool:
        """RFC 8289's dequeue decision, per packet leaving the queue."""
        if sojourn_ms < CODEL_TARGET_MS or self._queued_bytes <= MAHIMAHI_PACKET_BYTES:
            self._first_above = None
            self._dropping = False
            return False
        if self._first_above is None:
            self._first_above = now + CODEL_INTERVAL_MS
            return False
        if not self._dropping:
            if now < self._first_above:
                return False
            self._dropping = True
            # Resume near the last drop rate if we were dropping recently (RFC 8289 §5.5).
            recent = now - self._drop_next < 16 * CODEL_INTERVAL_MS
            self._count = self._count - 2 if recent and self._count > 2 else 1
            self._drop_next = now + CODEL_INTERVAL_MS / math.sqrt(self._count)
            return True
        if now >= self._drop_next:
            self._count += 1
            self._drop_next += CODEL_INTERVAL_MS / math.sqrt(self._count)
            return True
        return False

    def next_event_ms(self) -> float | None:
        """When ``advance`` next has something to do; None when idle."""
        times = []
        if self._queue:
            times.append(float(self._opp_ms(self._next_opp)))
        if self._flight:
            times.append(self._flight[0][0])
        return min(times) if times else None

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the queue."""
        return self._queued_bytes
