"""Which objects to fetch ahead of the player (pure): CMCD hints and the next segments.

CTA-5004 (CMCD) ``nor`` names the player's next request; after a segment the edge also
fetches the next ``k`` segments of the same rendition. Nothing here touches a socket or
a file: :mod:`edge.app` feeds it the request and spawns the fetches.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from edge.errors import PathRejected
from edge.policy import normalise_path

_SEGMENT = re.compile(r"^(?P<dir>/media/[^/]+/(?:[^/]+/){1,2})seg-(?P<n>\d{5})\.m4s$")


def next_segments(path: str, k: int) -> list[str]:
    """The next ``k`` segment paths of the same rendition after ``path`` (title layout
    ``/media/NAME/VERSION/RID/seg-00001.m4s``, or without the version folder); an empty
    list for anything else."""
    m = _SEGMENT.match(path)
    if not m or k <= 0:
        return []
    n = int(m.group("n"))
    return [f"{m.group('dir')}seg-{i:05d}.m4s" for i in range(n + 1, n + 1 + k) if i <= 99999]


def parse_cmcd(query: str, request_headers: Mapping[str, str]) -> dict[str, str | bool]:
    """CMCD key/values from the ``CMCD`` query argument or the ``CMCD-Object``,
    ``CMCD-Request``, ``CMCD-Session`` and ``CMCD-Status`` headers (CTA-5004 §2)."""
    blobs: list[str] = []
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k.upper() == "CMCD":
            blobs.append(v)
    for name in ("cmcd-object", "cmcd-request", "cmcd-session", "cmcd-status"):
        if name in request_headers:
            blobs.append(request_headers[name])
    out: dict[str, str | bool] = {}
    for blob in blobs:
        for item in _split_outside_quotes(blob):
            key, eq, val = item.partition("=")
            key = key.strip()
            if not key:
                continue
            out[key] = val.strip().strip('"') if eq else True
    return out


def _split_outside_quotes(s: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in s:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


MAX_NOR_HINTS = 4
"""CMCD ``nor`` names read per request (CTA-5004 v1 sends one; v2 allows a list). More
are ignored: one request must not fan out into many origin fetches."""


def title_root(path: str) -> str | None:
    """``/media/NAME/`` for a path inside a title, else None."""
    parts = path.split("/", 3)
    if len(parts) < 4 or parts[1] != "media" or not parts[2]:
        return None
    return f"/media/{parts[2]}/"


def prefetch_choice(path: str, query: str, request_headers: Mapping[str, str], k: int) -> list[str]:
    """Paths to fetch in the background after a request for ``path``.

    CMCD ``nor`` (next object request, a URL relative to the request) comes first, as the
    player's own hint: at most :data:`MAX_NOR_HINTS` names, each only if it stays inside
    the requested title (``/media/NAME/``); then the next ``k`` segments of the
    rendition. Each path at most once, never the requested path itself.
    """
    root = title_root(path)
    if root is None:
        return []
    chosen: list[str] = []
    cmcd = parse_cmcd(query, request_headers)
    nor = cmcd.get("nor")
    if isinstance(nor, str) and nor:
        for rel in nor.split(",", MAX_NOR_HINTS)[:MAX_NOR_HINTS]:
            rel = unquote(rel.strip())
            if not rel:
                continue
            target = rel if rel.startswith("/") else posixpath.join(posixpath.dirname(path), rel)
            target = target.split("?", 1)[0]
            try:
                target = normalise_path(posixpath.normpath(target))
            except PathRejected:
                continue
            chosen.append(target)
    chosen.extend(next_segments(path, k))
    out: list[str] = []
    for p in chosen:
        if p.startswith(root) and p != path and p not in out:
            out.append(p)
    return out


__all__ = ["MAX_NOR_HINTS", "next_segments", "parse_cmcd", "prefetch_choice", "title_root"]
