"""Trace-driven shaping for the real player (pure: clock values in, times out).

A token bucket whose fill rate follows a bandwidth trace: the body of every response is
read no faster than the trace allows (RFC 2697-style bucket, depth ``burst_bytes``), so
a session over loopback receives bytes as it would have over the traced network. The
trace clock is the session's virtual clock; the caller scales wall time by ``--speed``.
"""

from __future__ import annotations

from player_sim.link import Link

RUN_JOIN_S = 1e-9
"""Idle time (virtual seconds) below which a take continues the current run."""


class Shaper:
    """Token bucket filled at the trace's rate (bytes per virtual second).

    Bytes taken back to back form a *run*: the n-th byte of a run is delivered when the
    trace has carried n bytes since the run began, computed from the run's start (so the
    end of a body is the simulator's ``Link.finish_s(first_byte, size)``, not a sum of
    per-chunk roundings). A body's first take, or one after the bucket ran empty, begins a
    new run; one within
    :data:`RUN_JOIN_S` of it running empty continues the run (a timer woke the reader for
    exactly that moment, give or take the clock's rounding).
    """

    def __init__(self, link: Link, burst_bytes: float = 0.0) -> None:
        """`burst_bytes` 0: idle time is lost, as on a real link and in the simulator."""
        self.link = link
        self.burst_bytes = burst_bytes
        self.t_s = 0.0
        """When the bytes taken so far are all delivered."""
        self.run_start_s = 0.0
        """When the current run began."""
        self._run_base = 0.0  # the link's cumulative bytes at the run's start, less any burst credit
        self._run_bytes = 0.0
        self._fresh = True
        self.runs = 0
        """Runs begun so far."""

    def take(self, now_s: float, n_bytes: int, first: bool = False) -> float:
        """Consume ``n_bytes``; return the virtual time at which they may be delivered.

        ``first``: these are the first bytes of a body, which always begin a run.
        """
        if first or self._fresh or now_s > self.t_s + RUN_JOIN_S:  # the bucket ran empty: a new run
            credit = min(self.burst_bytes, self.link.bytes_at(now_s) - self.link.bytes_at(self.t_s))
            self.run_start_s, self._run_base, self._run_bytes = now_s, self.link.bytes_at(now_s) - credit, 0.0
            self._fresh = False
            self.runs += 1
        self._run_bytes += n_bytes
        self.t_s = max(now_s, self.link.time_at_bytes(self._run_base + self._run_bytes))
        return self.t_s

    def delivered_in_run(self, now_s: float) -> float:
        """Bytes of the current run delivered by ``now_s``."""
        return max(0.0, min(self._run_bytes, self.link.bytes_at(now_s) - self._run_base))

    def end_run(self, now_s: float) -> None:
        """Drop what the current run has not delivered by ``now_s`` (a body cut short: its
        bytes in flight are gone, and the next request does not queue behind them)."""
        if not self._fresh and now_s < self.t_s:
            self._run_bytes = self.delivered_in_run(now_s)
            self.t_s = now_s

    def allowed_bytes(self, start_s: float, end_s: float) -> float:
        """Bytes the trace allowed between two clock values (for the edge-stall verdict)."""
        return self.link.bytes_at(end_s) - self.link.bytes_at(start_s)
