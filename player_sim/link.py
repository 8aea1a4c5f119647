"""A network link that replays a bandwidth trace in virtual time (pure; no clock, no I/O).

The link turns a :class:`~player_sim.traces.Trace` into a cumulative-bytes curve over
elapsed session time, unrolled pass after pass as a session needs it. A download of ``n``
bytes that starts at ``t`` ends when the curve has risen by ``n`` past ``t``: exactly what
Pensieve's ``fixed_env.py`` computes sample by sample, including its wrap rule (after the
first pass the trace restarts at time 0, so the first period of every later pass lasts
``time[1] - 0`` rather than ``time[1] - time[0]``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate

import numpy as np

from player_sim.traces import Trace


class Link:
    """Cumulative delivered bytes as a function of elapsed time, for one trace."""

    def __init__(self, trace: Trace, payload_portion: float = 1.0) -> None:
        """``payload_portion`` scales every sample (Pensieve: 0.95 of the throughput is payload)."""
        self.trace = trace
        self._rates = [b / 8 * payload_portion for b in trace.bandwidths_bps]
        self._later_durations = list(trace.durations_s)
        self._later_durations[0] += trace.start_s
        self.times_s: list[float] = [0.0]
        """Knots of the curve: elapsed time at each period boundary."""
        self.bytes: list[float] = [0.0]
        """Cumulative bytes delivered at each knot."""
        self.rates_bytes_s: list[float] = []
        """Rate in the period after each knot."""
        self._passes = 0
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._extend()

    def _extend(self) -> None:
        durations = self.trace.durations_s if self._passes == 0 else self._later_durations
        kept = [(d, r) for d, r in zip(durations, self._rates, strict=True) if d > 0]
        self.times_s.extend(accumulate((d for d, _ in kept), initial=self.times_s[-1]))
        self.bytes.extend(accumulate((d * r for d, r in kept), initial=self.bytes[-1]))
        # accumulate repeats the initial value: drop the duplicated knots
        del self.times_s[-len(kept) - 1], self.bytes[-len(kept) - 1]
        self.rates_bytes_s.extend(r for _, r in kept)
        self._passes += 1

    def bytes_at(self, t_s: float) -> float:
        """Cumulative bytes delivered from time 0 to ``t_s``."""
        while t_s >= self.times_s[-1]:
            self._extend()
        i = bisect_right(self.times_s, t_s) - 1
        return self.bytes[i] + (t_s - self.times_s[i]) * self.rates_bytes_s[i]

    def time_at_bytes(self, n_bytes: float) -> float:
        """Earliest elapsed time at which ``n_bytes`` cumulative bytes have been delivered."""
        while n_bytes > self.bytes[-1]:
            self._extend()
        i = bisect_left(self.bytes, n_bytes)
        if i == 0:
            return 0.0
        return self.times_s[i - 1] + (n_bytes - self.bytes[i - 1]) / self.rates_bytes_s[i - 1]

    def finish_s(self, start_s: float, size_bytes: float) -> float:
        """When a transfer of ``size_bytes`` that starts at ``start_s`` completes."""
        return self.time_at_bytes(self.bytes_at(start_s) + size_bytes)

    def latency_s(self, t_s: float) -> float:
        """The trace's request latency in the period that contains ``t_s``."""
        while t_s >= self.times_s[-1]:
            self._extend()
        # Periods of zero length are skipped in the knots, so map through the trace itself.
        elapsed = t_s
        lat = self.trace.latencies_s
        if elapsed < self.trace.duration_s:
            durations = self.trace.durations_s
        else:
            first = self.trace.duration_s
            elapsed = (elapsed - first) % (self.trace.duration_s + self.trace.start_s)
            durations = tuple(self._later_durations)
        for d, latency in zip(durations, lat, strict=True):
            if elapsed < d:
                return latency
            elapsed -= d
        return lat[-1]

    def arrays(self, until_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Knot times, cumulative bytes and rates covering at least ``[0, until_s]`` (for vectorised planners)."""
        while self.times_s[-1] <= until_s:
            self._extend()
        if self._arrays is None or len(self._arrays[0]) != len(self.times_s):
            self._arrays = (np.asarray(self.times_s), np.asarray(self.bytes), np.asarray(self.rates_bytes_s))
        return self._arrays

    def arrays_for_bytes(self, n_bytes: float, extra_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arrays covering the time to deliver ``n_bytes`` plus ``extra_s`` seconds."""
        return self.arrays(self.time_at_bytes(n_bytes) + extra_s)
