"""QUIC handshake admission: how many unfinished handshakes the edge holds (pure).

A QUIC server keeps state for each connection from its first Initial packet; an attacker
who sends Initials (real or garbage) and never continues makes the server hold that state
until the idle timeout. RFC 9000 §8.1 (address validation) and §21.1.1 (handshake
denial of service) give the defences used here:

- state is kept only for Initials that decrypt and produce a reply (the shell checks);
- unfinished handshakes are bounded in total and per source address; past the bounds new
  Initials are dropped (a client retransmits, RFC 9002 §6.2);
- above a lower mark the server answers Initials without a token with a Retry (RFC 9000
  §8.1.2), so that only clients that prove their address get state;
- a handshake unfinished after ``handshake_timeout_s`` is given up.

The caller owns the clock: ``now`` comes in as an argument.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Admit(enum.Enum):
    """What to do with an Initial that would open a connection."""

    ACCEPT = "accept"
    """Create the connection."""
    RETRY = "retry"
    """Answer with a Retry packet (address validation) and keep no state."""
    DROP = "drop"
    """Keep no state, send nothing."""


@dataclass(frozen=True)
class HandshakeLimits:
    """Bounds on unfinished QUIC handshakes."""

    max_total: int = 512
    """Unfinished handshakes held at once."""
    max_per_source: int = 32
    """Unfinished handshakes per source IP address."""
    retry_above: int = 64
    """Above this many unfinished handshakes, Initials without a token get a Retry."""
    handshake_timeout_s: float = 10.0
    """An unfinished handshake older than this is given up."""


@dataclass
class HandshakeBudget:
    """Bookkeeping of unfinished handshakes by connection key and source."""

    limits: HandshakeLimits = field(default_factory=HandshakeLimits)
    _started: dict[int, tuple[str, float]] = field(default_factory=dict)
    _per_source: dict[str, int] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        return len(self._started)

    def admit(self, source: str, has_valid_token: bool) -> Admit:
        """Decide for a new connection's first Initial from ``source``."""
        if self._per_source.get(source, 0) >= self.limits.max_per_source \
                or self.pending >= self.limits.max_total:
            return Admit.DROP
        if not has_valid_token and self.pending >= self.limits.retry_above:
            return Admit.RETRY
        return Admit.ACCEPT

    def started(self, key: int, source: str, now: float) -> None:
        self._started[key] = (source, now)
        self._per_source[source] = self._per_source.get(source, 0) + 1

    def finished(self, key: int) -> None:
        """The handshake completed, or the connection ended."""
        got = self._started.pop(key, None)
        if got is not None:
            left = self._per_source[got[0]] - 1
            if left:
                self._per_source[got[0]] = left
            else:
                del self._per_source[got[0]]

    def expired(self, now: float) -> list[int]:
        """Keys of handshakes to give up (and forget)."""
        late = [k for k, (_, t) in self._started.items()
                if now - t > self.limits.handshake_timeout_s]
        for k in late:
            self.finished(k)
        return late
