"""Manifests with content steering, and the steering manifests themselves. Pure: text in,
text out.

HLS (Apple, "HLS Content Steering Specification" 1.2; RFC 8216bis §4.4.6.6): the master
playlist gets `#EXT-X-CONTENT-STEERING:SERVER-URI="…",PATHWAY-ID="…"` and, per edge, a copy of
its variants with `PATHWAY-ID` (and their own rendition groups, so that audio moves with
video); the steering manifest is JSON with `VERSION` 1, `TTL` (seconds), `RELOAD-URI`,
`PATHWAY-PRIORITY` and optionally `PATHWAY-CLONES` (`BASE-ID`, `ID`, `URI-REPLACEMENT`
with `HOST`, which replaces the host *name* only: hls.js sets `URL.hostname`). The player adds
`_HLS_pathway` (its current pathway) and `_HLS_throughput` (bit/s) to each request.

DASH (DASH-IF content steering; ETSI TS 103 998): the MPD gets `<ContentSteering
defaultServiceLocation="…" queryBeforeStart="true">SERVER-URI</ContentSteering>` and a
`<BaseURL serviceLocation="…">` per edge; the steering manifest is the same JSON with the
priority named `SERVICE-LOCATION-PRIORITY` (DASH-IF) and `PATHWAY-PRIORITY` (TS 103 998 and
dash.js 5, which reads only that name): both are sent. dash.js adds
`_DASH_pathway="a,b"` (the locations it used, quoted, comma-separated) and `_DASH_throughput`
(bit/s per location, comma-separated); a `HOST` clone may carry a port (dash.js builds
`protocol//HOST + path`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape, quoteattr

from steer.errors import SteerError

PATHWAY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""The characters HLS allows in a PATHWAY-ID (and our edge names)."""
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_STABLE = re.compile(r"[^A-Za-z0-9+/=._-]")
MAX_MANIFEST_BYTES = 4 * 2**20


@dataclass(frozen=True)
class Pathway:
    """One edge as a pathway: its id and the base URL (scheme://host:port) of its URL space."""

    id: str
    base: str


def attrs(text: str) -> list[tuple[str, str]]:
    """An HLS attribute list as (name, raw value) pairs, quotes kept (RFC 8216 §4.2)."""
    return [(m.group(1), m.group(2)) for m in _ATTR.finditer(text)]


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def _join(pairs: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in pairs)


def _set(pairs: list[tuple[str, str]], key: str, value: str) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in pairs if k != key]
    out.append((key, value))
    return out


def steer_hls_master(text: str, path: str, pathways: Sequence[Pathway], server_uri: str,
                     initial: str) -> str:
    """The master playlist at `path` (its path in the origin's URL space) with content
    steering: the steering tag, then every variant, rendition and I-frame playlist once per
    pathway, with absolute URIs into that pathway's base and per-pathway group ids."""
    lines = [ln.strip() for ln in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise SteerError(f"{path} is not an HLS playlist")
    if not any(ln.startswith("#EXT-X-STREAM-INF:") for ln in lines):
        raise SteerError(f"{path} is a media playlist, not a master playlist")
    if not pathways:
        raise SteerError("no edge is up")
    head: list[str] = []
    body: list[tuple[str, str | None]] = []     # (tag line, uri line for STREAM-INF)
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith(("#EXT-X-MEDIA:", "#EXT-X-I-FRAME-STREAM-INF:")):
            body.append((ln, None))
        elif ln.startswith("#EXT-X-STREAM-INF:"):
            j = i + 1
            while j < len(lines) and (not lines[j] or lines[j].startswith("#")):
                j += 1
            if j == len(lines):
                raise SteerError(f"{path}: an EXT-X-STREAM-INF has no URI")
            body.append((ln, lines[j]))
            i = j
        elif ln.startswith("#EXT-X-CONTENT-STEERING"):
            pass                                 # ours replaces any upstream one
        elif ln and ln != "#EXTM3U":
            head.append(ln)
        i += 1
    out = ["#EXTM3U", *head,
           f'#EXT-X-CONTENT-STEERING:SERVER-URI="{server_uri}",PATHWAY-ID="{initial}"']
    for p in pathways:
        here = p.base.rstrip("/") + path
        for tag, uri in body:
            name, _, rest = tag.partition(":")
            pairs = attrs(rest)
            fixed = []
            for k, v in pairs:
                if k == "URI":
                    v = f'"{urljoin(here, _unquote(v))}"'
                elif k in ("GROUP-ID", "AUDIO", "SUBTITLES", "CLOSED-CAPTIONS") and v != "NONE":
                    v = f'"{_unquote(v)}-{p.id}"'
                fixed.append((k, v))
            if name == "#EXT-X-MEDIA":
                if "STABLE-RENDITION-ID" not in dict(fixed):
                    fixed.append(("STABLE-RENDITION-ID", f'"{_stable(dict(pairs).get("URI", ""))}"'))
                out.append(f"{name}:{_join(fixed)}")
                continue
            fixed = _set(fixed, "PATHWAY-ID", f'"{p.id}"')
            stable_of = uri if uri is not None else dict(pairs).get("URI", "")
            if "STABLE-VARIANT-ID" not in dict(fixed):
                fixed.append(("STABLE-VARIANT-ID", f'"{_stable(stable_of)}"'))
            out.append(f"{name}:{_join(fixed)}")
            if uri is not None:
                out.append(urljoin(here, uri))
    return "\n".join(out) + "\n"


def _stable(uri: str) -> str:
    """A STABLE-VARIANT-ID / STABLE-RENDITION-ID from the upstream URI (same on every pathway)."""
    return _STABLE.sub("_", _unquote(uri))[:64] or "v"


_MPD_OPEN = re.compile(r"<MPD\b[^>]*>", re.S)
_AFTER_INFO = re.compile(r"<ProgramInformation\b[^>]*/>|<ProgramInformation\b.*?</ProgramInformation>", re.S)


def steer_mpd(text: str, path: str, pathways: Sequence[Pathway], server_uri: str,
              initial: str) -> str:
    """The MPD at `path` with a `<BaseURL serviceLocation>` per pathway (the MPD's folder on
    that edge) and `<ContentSteering>`; MPD-level BaseURLs upstream are refused."""
    m = _MPD_OPEN.search(text)
    if m is None:
        raise SteerError(f"{path} is not a DASH MPD")
    if not pathways:
        raise SteerError("no edge is up")
    if re.search(r"<ContentSteering\b", text):
        raise SteerError(f"{path} already carries ContentSteering")
    period = text.find("<Period", m.end())
    if re.search(r"<BaseURL\b", text[m.end():period if period > 0 else len(text)]):
        raise SteerError(f"{path} has an MPD-level BaseURL; steering adds its own")
    folder = path.rsplit("/", 1)[0] + "/"
    els = [f"<BaseURL serviceLocation={quoteattr(p.id)}>{escape(p.base.rstrip('/') + folder)}</BaseURL>"
           for p in pathways]
    els.append(f"<ContentSteering defaultServiceLocation={quoteattr(initial)} "
               f'queryBeforeStart="true">{escape(server_uri)}</ContentSteering>')
    info = _AFTER_INFO.search(text, m.end())
    at = info.end() if info is not None and (period < 0 or info.start() < period) else m.end()
    block = "".join(f"\n\t{e}" for e in els)
    return text[:at] + block + text[at:]


def clone_for(pathways: Sequence[Pathway], new: Pathway, *, hls: bool) -> dict[str, Any] | None:
    """A `PATHWAY-CLONES` entry that makes `new` out of one of `pathways` by replacing the
    host, or None when no URI replacement can express it (HLS replaces only the host name,
    so the scheme and the port must match)."""
    nu = urlsplit(new.base)
    for p in pathways:
        pu = urlsplit(p.base)
        if pu.scheme != nu.scheme or (pu.path or "/") != (nu.path or "/"):
            continue
        if hls and pu.port == nu.port:
            return {"BASE-ID": p.id, "ID": new.id, "URI-REPLACEMENT": {"HOST": nu.hostname}}
        if not hls:
            return {"BASE-ID": p.id, "ID": new.id, "URI-REPLACEMENT": {"HOST": nu.netloc}}
    return None


def steering_manifest(kind: str, priority: Sequence[str], ttl_s: int, reload_uri: str,
                      clones: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The steering manifest (`kind` "hls" or "dash") as a JSON-able object."""
    doc: dict[str, Any] = {"VERSION": 1, "TTL": int(ttl_s), "RELOAD-URI": reload_uri,
                           "PATHWAY-PRIORITY": list(priority)}
    if kind == "dash":
        doc["SERVICE-LOCATION-PRIORITY"] = list(priority)
    if clones:
        doc["PATHWAY-CLONES"] = [dict(c) for c in clones]
    return doc


def parse_pathways(kind: str, value: str | None) -> list[str]:
    """The client's pathway(s) from `_HLS_pathway` or `_DASH_pathway` (quoted, comma list)."""
    if not value:
        return []
    raw = value.strip('"') if kind == "dash" else value
    ids = [x.strip() for x in raw.split(",")] if kind == "dash" else [raw]
    if len(ids) > 64 or not all(PATHWAY_ID.fullmatch(x) for x in ids):
        raise SteerError(f"bad _{kind.upper()}_pathway {value[:80]!r}: pathway ids are 1-64 "
                         "letters, digits, '-', '.' or '_'")
    return ids


def parse_throughput(kind: str, value: str | None) -> list[float]:
    """Bit/s from `_HLS_throughput` (one number) or `_DASH_throughput` (comma list)."""
    if not value:
        return []
    parts = value.split(",") if kind == "dash" else [value]
    try:
        out = [float(x) for x in parts if x.strip()]
    except ValueError:
        raise SteerError(f"bad _{kind.upper()}_throughput {value[:80]!r}: bit/s numbers "
                         "expected") from None
    if len(out) > 64 or any(not 0 <= x < 1e12 for x in out):
        raise SteerError(f"bad _{kind.upper()}_throughput {value[:80]!r}")
    return out
