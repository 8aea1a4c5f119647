"""Response shaping (pure): which status, headers and bytes the edge answers with.

One function, :func:`shape`, for every cached or streaming answer: the stored headers
(with CORS for browser players), ``Age``, ``X-Cache`` and ``Via``, then the conditional and
range rules of :mod:`abrstack.httpsem` (the same table the origin answers from): a 304 keeps
the validators and caching fields (RFC 9110 §15.4.5), a 412 and a 416 carry no body, a
satisfiable range is a 206 with ``Content-Range``. Nothing here touches a socket or the
clock; :mod:`edge.app` passes the age and sends what comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from abrstack import httpsem
from edge.policy import Headers

CORS_ALLOW_HEADERS = (
    "Range, If-None-Match, If-Modified-Since, CMCD-Object, CMCD-Request, CMCD-Session, "
    "CMCD-Status"
)
CORS_EXPOSE = "X-Cache, Age, Content-Range, Content-Length, Accept-Ranges, ETag, Via"
_NOT_MODIFIED_KEEPS = frozenset({"etag", "last-modified", "cache-control", "expires", "vary",
                                 "age", "x-cache", "via"})


@dataclass(frozen=True)
class Reply:
    """What to send for one request."""

    status: int
    headers: list[tuple[str, str]]
    """Complete, ``content-length`` included when the length is known."""
    first: int = 0
    """Offset of the first body byte to send."""
    end: int | None = None
    """Offset after the last body byte (None: to the end of the object)."""
    has_body: bool = True
    """False for 304, 412 and 416 (and nothing is sent after the headers)."""


def base_headers(stored: Headers) -> list[tuple[str, str]]:
    """A response's own headers as every client gets them: the edge's bookkeeping
    (``age-in``) removed, CORS added (computed once per stored object or fetch)."""
    hs = [(k, v) for k, v in stored if k != "age-in"]
    with_cors(hs)
    return hs


def with_cors(hs: list[tuple[str, str]]) -> None:
    """CORS for browser players: allow any origin, expose the edge's headers (merged with
    what the origin exposes); drop the origin's Accept-Ranges (the edge sets its own)."""
    exposed = [t.strip() for k, v in hs if k == "access-control-expose-headers"
               for t in v.split(",") if t.strip()]
    names = {k for k, _ in hs}
    hs[:] = [h for h in hs if h[0] not in ("access-control-expose-headers", "accept-ranges")]
    if "access-control-allow-origin" not in names:
        hs.append(("access-control-allow-origin", "*"))
    known = {e.lower() for e in exposed}
    for t in CORS_EXPOSE.split(", "):
        if t.lower() not in known:
            exposed.append(t)
    hs.append(("access-control-expose-headers", ", ".join(exposed)))


def shape(method: str, request: Mapping[str, str], status: int, base: list[tuple[str, str]],
          size_bytes: int | None, rep: httpsem.Representation | None, age_s: int,
          x_cache: str, via: str) -> Reply:
    """The answer to ``method`` with ``request`` headers for a response of ``status`` with
    ``base`` headers (:func:`base_headers`) and ``size_bytes`` of body (None: not known yet,
    it streams in). ``rep`` is the representation the conditional and range rules judge: given
    for a 200 of known length, None otherwise (those are sent as they are)."""
    hs = [*base, ("age", str(age_s)), ("x-cache", x_cache), ("via", via)]
    if status == httpsem.OK and rep is not None:
        hs.append(("accept-ranges", "bytes"))
        decision = httpsem.decide(method, request, rep)
        if decision.status == httpsem.RANGE_NOT_SATISFIABLE:
            # RFC 9110 §15.5.17: Content-Range names the current length.
            return _bodiless(416, [("content-range", f"bytes */{rep.size_bytes}"),
                                   ("x-cache", x_cache), ("cache-control", "no-cache")])
        if decision.status == httpsem.NOT_MODIFIED:
            return _bodiless(304, [h for h in hs if h[0] in _NOT_MODIFIED_KEEPS
                                   or h[0].startswith("access-control")])
        if not decision.sends_body:  # 412
            return _bodiless(decision.status, [("cache-control", "no-cache"),
                                               ("x-cache", x_cache), ("via", via)])
        rng = decision.byte_range
        if rng is not None:
            hs += [("content-range", rng.content_range(rep.size_bytes)),
                   ("content-length", str(rng.length_bytes))]
            return Reply(httpsem.PARTIAL_CONTENT, hs, rng.first, rng.last + 1)
    if size_bytes is not None:
        hs.append(("content-length", str(size_bytes)))
    return Reply(status, hs)


def _bodiless(status: int, hs: list[tuple[str, str]]) -> Reply:
    return Reply(status, [*hs, ("content-length", "0")], 0, 0, has_body=False)


__all__ = ["CORS_ALLOW_HEADERS", "CORS_EXPOSE", "Reply", "base_headers", "shape", "with_cors"]
