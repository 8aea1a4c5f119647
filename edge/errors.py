"""The edge's errors: one base, :class:`EdgeError`, for everything the edge raises itself.

A user-facing error (a bad option, a busy port) is an ``EdgeError`` whose message is one
sentence; the request path raises its subclasses and the app translates them into a status
at one place (a refused path is 400, an origin that failed 502/503/504, a reader that made
no progress is cut).
"""

from __future__ import annotations

from abrstack.errors import AbrError


class EdgeError(AbrError):
    """Base of every edge error: bad options, a port in use, an unreadable certificate, and
    the request-path errors below."""


class BadSetting(EdgeError, ValueError):
    """A setting that does not parse (a size, a cache-key parameter list)."""


class PathRejected(EdgeError, ValueError):
    """A request path the edge refuses (dot segments, control bytes, hidden names)."""


class UpstreamError(EdgeError):
    """No origin answered; ``status`` is what the client gets (502, 503 or 504)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SlowReader(EdgeError):
    """The client made no progress reading a response (it is cut, and logged so)."""


__all__ = ["BadSetting", "EdgeError", "PathRejected", "SlowReader", "UpstreamError"]
