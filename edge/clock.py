"""The edge's one clock.

Every part of the edge that reads the time takes a :data:`Clock` (wall-clock seconds, the
scale of HTTP ``Date``, file modification times and log stamps) from its constructor, and
:class:`edge.app.EdgeApp` passes its own to each of them, so that a test that sets the
clock sets it for freshness, ages, the circuit breakers, the purge log, the cross-worker
lock files and the access log alike. Durations that only the loop needs (timeouts,
deadlines) are asyncio's own (``loop.time()``), which the event loop owns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Wall-clock seconds since the epoch."""

SYSTEM_CLOCK: Clock = time.time
"""The real clock (the default everywhere)."""

__all__ = ["SYSTEM_CLOCK", "Clock"]
