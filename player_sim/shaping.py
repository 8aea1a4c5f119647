"""Trace-driven shaping for the real player (pure: clock values in, times out).

A token bucket whose fill rate follows a bandwidth trace: the body of every response is
read no faster than the trace allows (RFC 2697-style bucket, depth ``burst_bytes``), so
a session over loopback receives bytes as it would have over the traced network. The
trace clock is the session's virtual clock; the caller scales wall time by ``--speed``.
"""

from __future__ import annotations

from player_sim.link import Link


class Shaper:
    """Token bucket filled at the trace's rate (bytes per virtual second)."""

    def __init__(self, link: Link, burst_bytes: float = 0.0) -> None:
        """`burst_bytes` 0: idle time is lost, as on a real link and in the simulator."""
        self.link = link
        self.burst_bytes = burst_bytes
        self.tokens = burst_bytes
        self.t_s = 0.0

    def _refill(self, now_s: float) -> None:
        if now_s > self.t_s:
            gained = self.link.bytes_at(now_s) - self.link.bytes_at(self.t_s)
            self.tokens = min(self.burst_bytes, self.tokens + gained)
            self.t_s = now_s

    def take(self, now_s: float, n_bytes: int) -> float:
        """Consume ``n_bytes``; return the virtual time at which they may be delivered."""
        self._refill(now_s)
        if self.tokens >= n_bytes:
            self.tokens -= n_bytes
            return max(now_s, self.t_s)
        need = n_bytes - self.tokens
        start = max(now_s, self.t_s)
        ready = self.link.time_at_bytes(self.link.bytes_at(start) + need)
        self.tokens = 0.0
        self.t_s = ready
        return ready

    def allowed_bytes(self, start_s: float, end_s: float) -> float:
        """Bytes the trace allowed between two clock values (for the edge-stall verdict)."""
        return self.link.bytes_at(end_s) - self.link.bytes_at(start_s)
