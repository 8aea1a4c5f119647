"""A circuit breaker per origin and the retry backoff (pure: the caller passes the time).

Used by :mod:`edge.upstream`; what counts as an origin failure is decided there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """A circuit breaker per origin (Nygard, *Release It!*, 2007).

    Closed: requests pass; ``failure_threshold`` consecutive failures open it. Open:
    requests fail fast for ``open_s``; after that one probe at a time is let through
    (half-open); a success closes it, a failure opens it again.
    """

    failure_threshold: int = 5
    open_s: float = 5.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at_s: float = 0.0
    probe_in_flight: bool = False

    def allow(self, now_s: float) -> bool:
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now_s - self.opened_at_s >= self.open_s:
            self.state = BreakerState.HALF_OPEN
            self.probe_in_flight = False
        if self.state is BreakerState.HALF_OPEN and not self.probe_in_flight:
            self.probe_in_flight = True
            return True
        return False

    def release_probe(self) -> None:
        """The let-through request ended without telling anything about the origin
        (the edge's own congestion, or a URL-specific error): another may probe."""
        self.probe_in_flight = False

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.probe_in_flight = False

    def record_failure(self, now_s: float) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at_s = now_s
            self.probe_in_flight = False


def backoff_s(attempt: int, base_s: float, cap_s: float, jitter: float) -> float:
    """Delay before retry ``attempt`` (1-based): capped exponential backoff with "equal
    jitter" (AWS Architecture Blog, 2015); ``jitter`` in [0, 1] is supplied by the caller."""
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter


__all__ = ["BreakerState", "CircuitBreaker", "backoff_s"]
