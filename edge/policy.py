"""Pure cache policy for the edge: keys, freshness, revalidation, conditionals, eviction order.

Nothing here touches a socket, a file or the clock: every function takes ``now_s`` (wall
clock seconds, the same scale as HTTP ``Date``) as an argument, so the policy is tested
in memory with a fake clock and the shell (:mod:`edge.app`) only feeds it.

References: RFC 9111 (HTTP caching), RFC 5861 (stale-while-revalidate, stale-if-error),
RFC 8246 (immutable), RFC 9110 §14 (ranges) and §13 (conditional requests) via :mod:`abrstack.httpsem`,
prefetch hints are in :mod:`edge.prefetch`, the circuit breaker in :mod:`edge.breaker`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import format_datetime, parsedate_to_datetime
from functools import cached_property
from urllib.parse import parse_qsl, quote, unquote, urlencode

from abrstack.httpsem import Representation, parse_http_date
from edge.errors import BadSetting, PathRejected

# Response header names are lower-case everywhere in the edge.
Headers = tuple[tuple[str, str], ...]

#: Hop-by-hop and per-connection headers never stored or forwarded (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
        "trailer", "upgrade", "proxy-authenticate", "proxy-authorization",
        "content-length", "date", "server", "alt-svc", "age", "x-cache",
    }
)

#: Statuses the edge stores: whole 200 bodies, and 404/410 as short negative entries.
NEGATIVE_STATUSES = frozenset({404, 410})


_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/_.~-]*")


# --------------------------------------------------------------------------- keys

def normalise_path(raw_path: str) -> str:
    """Return the canonical form of a request path, or raise :class:`PathRejected`.

    Percent-decoding happens once; decoded ``..``/``.`` segments, backslashes, NUL and
    control characters, and segments starting with ``.`` (the encoder's ``.tmp-*``
    folders) are refused rather than resolved, so no spelling of a path can escape.
    """
    if _PLAIN_PATH.fullmatch(raw_path) and "/." not in raw_path and "//" not in raw_path:
        return raw_path  # the common case: nothing to decode or refuse
    if not raw_path.startswith("/"):
        raise PathRejected("path must start with /")
    decoded = unquote(raw_path, errors="strict")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in decoded):
        raise PathRejected("control character or backslash in path")
    segments = decoded.split("/")[1:]
    for seg in segments:
        if seg in (".", "..") or seg.startswith("."):
            raise PathRejected("dot segment in path")
    collapsed = re.sub("/{2,}", "/", decoded)
    return quote(collapsed, safe="/-._~!$&'()*+,;=:@")


#: Query parameters that select a different object, per path class: (path prefix, allowed
#: names) pairs, the first matching prefix wins; None keeps every parameter. The origin
#: reads ``player`` on ``/play/`` and nothing else, so ``?bust=N`` on a segment is the same
#: object and must not make N stored copies (nor N origin fetches).
KeyParams = tuple[tuple[str, frozenset[str] | None], ...]
DEFAULT_KEY_PARAMS: KeyParams = (
    ("/media/", frozenset()),
    ("/titles", frozenset()),
    ("/static/", frozenset()),
    ("/play/", frozenset({"player"})),
)


def key_query(path: str, query: str, key_params: KeyParams = DEFAULT_KEY_PARAMS) -> str:
    """The query as the edge keys and forwards it: only the parameters allowed for the
    path's class (:data:`DEFAULT_KEY_PARAMS`), sorted (stable for repeated names) and
    re-encoded; ``CMCD`` (CTA-5004 §2, query-argument transmission) is always dropped
    because it changes on every request and never changes the object."""
    allowed: frozenset[str] | None = None
    for prefix, names in key_params:
        if path.startswith(prefix):
            allowed = names
            break
    if allowed is not None and not allowed:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
             if k.upper() != "CMCD" and (allowed is None or k in allowed)]
    pairs.sort(key=lambda kv: kv[0])
    return urlencode(pairs)


def cache_key(path: str, query: str, key_params: KeyParams = DEFAULT_KEY_PARAMS) -> str:
    """The cache key: normalised path + :func:`key_query`. No request header is part of
    the key, so request headers never change which object is served."""
    q = key_query(path, query, key_params)
    return f"{path}?{q}" if q else path


def parse_key_params(specs: Iterable[str]) -> KeyParams:
    """``PREFIX=a,b`` settings (``PREFIX=`` for none, ``PREFIX=*`` for all) put before the
    defaults, so that they win; raises ValueError on a malformed one."""
    out: list[tuple[str, frozenset[str] | None]] = []
    for spec in specs:
        prefix, eq, names = spec.partition("=")
        if not eq or not prefix.startswith("/"):
            raise BadSetting(f"not PREFIX=a,b with PREFIX starting with /: {spec!r}")
        allowed = None if names.strip() == "*" else frozenset(
            n.strip() for n in names.split(",") if n.strip())
        out.append((prefix, allowed))
    return (*out, *DEFAULT_KEY_PARAMS)


# ------------------------------------------------------------------ cache-control

def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Parse a ``Cache-Control`` value into ``{directive: argument-or-None}`` (RFC 9111 §5.2)."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, arg = part.partition("=")
        name = name.strip().lower()
        out[name] = arg.strip().strip('"') if sep else None
    return out


def _seconds(cc: Mapping[str, str | None], name: str) -> float | None:
    arg = cc.get(name)
    if arg is None:
        return None
    try:
        return max(0.0, float(int(arg)))
    except ValueError:
        return 0.0  # RFC 9111 §4.2.1: an invalid value means stale


def http_date_s(value: str | None) -> float | None:
    """Seconds since the epoch of an HTTP-date, or None if absent/invalid."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def format_http_date(t_s: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7) for ``t_s`` seconds since the epoch."""
    from datetime import UTC, datetime

    return format_datetime(datetime.fromtimestamp(t_s, UTC), usegmt=True)


def header(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (lower-case) or None."""
    for k, v in headers:
        if k == name:
            return v
    return None


# ---------------------------------------------------------------------- metadata

@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the cache policy."""

    negative_ttl_s: float = 5.0
    """Lifetime of a 404/410 without explicit freshness, and the cap on any negative entry."""
    heuristic_fraction: float = 0.1
    """RFC 9111 §4.2.2: fraction of (Date - Last-Modified) used as heuristic lifetime."""
    heuristic_max_s: float = 3600.0
    """Cap on heuristic freshness."""
    key_params: KeyParams = DEFAULT_KEY_PARAMS
    """Query parameters kept in the cache key and sent upstream, per path prefix."""


@dataclass(frozen=True)
class Entry:
    """What the edge knows about one stored response (the body is stored separately)."""

    status: int
    """200 for objects, 404/410 for negative entries."""
    headers: Headers
    """End-to-end response headers, lower-case names, hop-by-hop removed."""
    request_time_s: float
    """When the request that produced this response was sent (RFC 9111 §4.2.3)."""
    response_time_s: float
    """When the response was received."""
    size_bytes: int
    """Length of the stored body."""
    body_id: str = ""
    """Name of the stored body in the disk tier (changes when the body changes)."""

    # --- derived views (computed once per entry: a hit must be cheap)
    @cached_property
    def cc(self) -> dict[str, str | None]:
        return parse_cache_control(header(self.headers, "cache-control"))

    @cached_property
    def etag(self) -> str | None:
        return header(self.headers, "etag")

    @cached_property
    def last_modified(self) -> str | None:
        return header(self.headers, "last-modified")

    @cached_property
    def initial_age_s(self) -> float:
        """RFC 9111 §4.2.3 ``corrected_initial_age``."""
        age_value = _seconds({"a": header(self.headers, "age-in")}, "a") or 0.0
        date = http_date_s(header(self.headers, "date"))
        apparent_age = max(0.0, self.response_time_s - date) if date is not None else 0.0
        response_delay = max(0.0, self.response_time_s - self.request_time_s)
        return max(apparent_age, age_value + response_delay)

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status, "headers": [list(h) for h in self.headers],
            "request_time_s": self.request_time_s, "response_time_s": self.response_time_s,
            "size_bytes": self.size_bytes, "body_id": self.body_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Entry:
        hs = d["headers"]
        assert isinstance(hs, list)
        return cls(
            status=int(d["status"]),  # type: ignore[call-overload]
            headers=tuple((str(k), str(v)) for k, v in hs),
            request_time_s=float(d["request_time_s"]),  # type: ignore[arg-type]
            response_time_s=float(d["response_time_s"]),  # type: ignore[arg-type]
            size_bytes=int(d["size_bytes"]),  # type: ignore[call-overload]
            body_id=str(d.get("body_id", "")),
        )


def clean_headers(raw: Iterable[tuple[str, str]]) -> Headers:
    """Lower-case names and drop hop-by-hop headers (and those named in ``Connection``)."""
    items = [(k.lower(), v) for k, v in raw]
    named = {
        t.strip().lower()
        for k, v in items if k == "connection" for t in v.split(",")
    }
    return tuple((k, v) for k, v in items if k not in HOP_BY_HOP and k not in named)


def storable(method: str, status: int, headers: Headers) -> bool:
    """May a shared cache store this response? (RFC 9111 §3, shared-cache rules).

    ``no-store`` and ``private`` forbid it; so does ``Vary`` on anything but ``Origin`` /
    ``Accept-Encoding`` (the key holds no request header); only 200 and 404/410 are kept.
    """
    if method not in ("GET", "HEAD"):
        return False
    if status != 200 and status not in NEGATIVE_STATUSES:
        return False
    cc = parse_cache_control(header(headers, "cache-control"))
    if "no-store" in cc or "private" in cc:
        return False
    vary = header(headers, "vary")
    if vary:
        fields = {f.strip().lower() for f in vary.split(",")}
        if fields - {"origin", "accept-encoding", ""}:
            return False
    return not (header(headers, "authorization") is not None and "public" not in cc)


def freshness_lifetime_s(entry: Entry, cfg: PolicyConfig) -> float:
    """RFC 9111 §4.2.1 for a shared cache: s-maxage, then max-age, then Expires - Date,
    then a heuristic (§4.2.2); negative entries are capped at ``negative_ttl_s``."""
    memo = entry.__dict__.setdefault("_lifetimes", {})
    if cfg not in memo:
        memo[cfg] = _freshness_lifetime_s(entry, cfg)
    return float(memo[cfg])


def _freshness_lifetime_s(entry: Entry, cfg: PolicyConfig) -> float:
    cc = entry.cc
    lifetime: float | None = _seconds(cc, "s-maxage")
    if lifetime is None:
        lifetime = _seconds(cc, "max-age")
    if lifetime is None and header(entry.headers, "expires") is not None:
        expires = http_date_s(header(entry.headers, "expires"))
        date = http_date_s(header(entry.headers, "date")) or entry.response_time_s
        lifetime = max(0.0, expires - date) if expires is not None else 0.0
    if entry.status in NEGATIVE_STATUSES:
        return min(lifetime if lifetime is not None else cfg.negative_ttl_s, cfg.negative_ttl_s)
    if lifetime is None:
        lm = http_date_s(entry.last_modified)
        date = http_date_s(header(entry.headers, "date")) or entry.response_time_s
        if lm is not None and date > lm:
            lifetime = min(cfg.heuristic_max_s, cfg.heuristic_fraction * (date - lm))
        else:
            lifetime = 0.0
    if "no-cache" in cc:
        return 0.0  # RFC 9111 §5.2.2.4: stored, but revalidated before every use
    return lifetime


def current_age_s(entry: Entry, now_s: float) -> float:
    """RFC 9111 §4.2.3 age calculation."""
    return entry.initial_age_s + max(0.0, now_s - entry.response_time_s)


class Lookup(enum.Enum):
    """What to do with a stored entry for a request."""

    FRESH = "fresh"
    """Serve it (X-Cache: HIT)."""
    STALE_REVALIDATE_BACKGROUND = "swr"
    """Serve it now and revalidate in the background (RFC 5861 §3; X-Cache: STALE)."""
    REVALIDATE = "revalidate"
    """Ask the origin first (conditionally if there are validators)."""


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one lookup."""

    action: Lookup
    age_s: float
    lifetime_s: float


def judge(
    entry: Entry, now_s: float, cfg: PolicyConfig, request_cc: Mapping[str, str | None] | None = None
) -> Verdict:
    """Decide whether a stored entry can be served at ``now_s``.

    A client's ``Cache-Control: no-cache`` / ``max-age=0`` (a browser reload) forces a
    revalidation (RFC 9111 §5.2.1.4), except for ``immutable`` responses during their
    freshness lifetime (RFC 8246 §2): those are never revalidated while fresh.
    """
    lifetime = freshness_lifetime_s(entry, cfg)
    age = current_age_s(entry, now_s)
    cc = entry.cc
    fresh = age < lifetime
    if fresh and request_cc and "immutable" not in cc and (
        "no-cache" in request_cc or _seconds(request_cc, "max-age") == 0.0
    ):
        return Verdict(Lookup.REVALIDATE, age, lifetime)
    if fresh:
        return Verdict(Lookup.FRESH, age, lifetime)
    swr = _seconds(cc, "stale-while-revalidate")
    if (
        swr is not None
        and age < lifetime + swr
        and "must-revalidate" not in cc
        and "proxy-revalidate" not in cc
        and "no-cache" not in cc
    ):
        return Verdict(Lookup.STALE_REVALIDATE_BACKGROUND, age, lifetime)
    return Verdict(Lookup.REVALIDATE, age, lifetime)


def may_serve_stale_on_error(entry: Entry, now_s: float, cfg: PolicyConfig) -> bool:
    """RFC 5861 §4: a stale entry may answer when the origin fails (5xx or unreachable)
    within ``stale-if-error`` seconds of staleness; ``must-revalidate`` forbids it."""
    cc = entry.cc
    if "must-revalidate" in cc or "proxy-revalidate" in cc or "no-cache" in cc:
        return False
    sie = _seconds(cc, "stale-if-error")
    if sie is None:
        return False
    staleness = current_age_s(entry, now_s) - freshness_lifetime_s(entry, cfg)
    return staleness < sie


def validators(entry: Entry) -> dict[str, str]:
    """Conditional request headers for revalidating ``entry`` (RFC 9110 §13.1)."""
    out: dict[str, str] = {}
    if entry.etag:
        out["If-None-Match"] = entry.etag
    if entry.last_modified:
        out["If-Modified-Since"] = entry.last_modified
    return out


def refreshed(entry: Entry, not_modified_headers: Headers, request_time_s: float,
              response_time_s: float) -> Entry:
    """The entry updated by a 304 (RFC 9111 §4.3.4): stored headers are replaced by the
    304's, and the age clock restarts."""
    new = dict(entry.headers)
    for k, v in not_modified_headers:
        new[k] = v
    return replace(
        entry, headers=tuple(new.items()), request_time_s=request_time_s,
        response_time_s=response_time_s,
    )


def origin_age_header(raw_age: str | None) -> Headers:
    """The origin's ``Age`` kept as ``age-in`` (our own ``Age`` is computed on output)."""
    return (("age-in", raw_age),) if raw_age else ()


def output_headers(entry: Entry) -> Headers:
    """Stored headers as sent to clients (internal bookkeeping headers removed)."""
    return tuple((k, v) for k, v in entry.headers if k != "age-in")


# ------------------------------------------------------------ client conditionals

def representation(entry: Entry) -> Representation:
    """A stored 200 as the shared HTTP rules (:mod:`abrstack.httpsem`) see it, so that the
    edge answers conditionals and ranges exactly as the origin does (RFC 9110 §13, §14).

    The stored headers keep no ``Date`` (hop-by-hop here), so the response time stands in
    for it: Last-Modified is strong when it is at least one second earlier (§8.8.2.2).
    """
    lm = parse_http_date(entry.last_modified)
    strong = lm is not None and int(entry.response_time_s) >= lm + 1
    return Representation(entry.size_bytes, entry.etag, lm, strong)


def streamed_representation(headers: Headers, size_bytes: int, now_s: float) -> Representation:
    """The same for a 200 that is still streaming in from the origin (received ``now_s``)."""
    lm = parse_http_date(header(headers, "last-modified"))
    strong = lm is not None and int(now_s) >= lm + 1
    return Representation(size_bytes, header(headers, "etag"), lm, strong)


# ---------------------------------------------------------------------- eviction

@dataclass
class LruIndex:
    """Byte-bounded least-recently-used order (the memory tier's eviction policy).

    ``touch`` marks a key used; ``add`` returns the keys to evict so that the total stays
    within ``capacity_bytes``. Objects larger than the capacity are refused (returned as
    their own victim).
    """

    capacity_bytes: int
    _sizes: dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0

    def __contains__(self, key: str) -> bool:
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def touch(self, key: str) -> None:
        size = self._sizes.pop(key, None)
        if size is not None:
            self._sizes[key] = size  # dicts keep insertion order: the end is most recent

    def add(self, key: str, size_bytes: int) -> list[str]:
        victims: list[str] = []
        if key in self._sizes:
            self.total_bytes -= self._sizes.pop(key)
        if size_bytes > self.capacity_bytes:
            return [key]
        self._sizes[key] = size_bytes
        self.total_bytes += size_bytes
        while self.total_bytes > self.capacity_bytes:
            oldest = next(iter(self._sizes))
            self.total_bytes -= self._sizes.pop(oldest)
            victims.append(oldest)
        return victims

    def remove(self, key: str) -> None:
        size = self._sizes.pop(key, None)
        if size is not None:
            self.total_bytes -= size

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        return list(self._sizes)


def parse_size(text: str) -> int:
    """``10GiB``, ``512MiB``, ``100MB``, ``1024`` → bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not m:
        raise BadSetting(f"not a size: {text!r}")
    num, prefix, binary = m.groups()
    power = " KMGT".index(prefix.upper() or " ")
    return int(float(num) * (1024 if binary or not prefix else 1000) ** power)


__all__ = [
    "Entry", "LruIndex", "Lookup", "PathRejected",
    "DEFAULT_KEY_PARAMS", "KeyParams", "PolicyConfig", "Verdict", "cache_key",
    "clean_headers", "current_age_s", "format_http_date", "freshness_lifetime_s", "judge",
    "key_query", "may_serve_stale_on_error", "normalise_path",
    "parse_cache_control", "parse_key_params", "parse_size",
    "refreshed", "representation", "storable", "streamed_representation", "validators",
]
