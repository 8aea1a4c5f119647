"""The fleet spec: one description of a CDN fleet (origin, shield tier, edges, steering,
proactive fill, event bus) that `abr fleet up` runs as local processes and the Kubernetes
renderer deploys. Parsed from YAML (``deploy/fleet.example.yaml``) or built from the
``--edges N --shield`` shorthand, validated into frozen dataclasses; a bad spec is one
sentence (:class:`FleetSpecError`).

Each service's command line comes from one pure function (:func:`origin_argv`,
:func:`edge_argv`, :func:`steer_argv`) so that local processes and pods run the same
``abr`` invocation. The caller says where the upstreams are (``urls``: service name → base
URL) since that differs: ``http://127.0.0.1:PORT`` locally, ``http://NAME:PORT`` in a cluster.

    spec = load_spec(Path("deploy/fleet.example.yaml"))        # or shorthand(edges=3, shield=True)
    for svc in spec.edges:
        argv = edge_argv(spec, svc, urls={"origin": "http://origin:8080",
                                          "shield": "http://shield:8081"},
                         cache_dir=Path("/cache"), redis_url="redis://redis:6379/0")
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abrstack.errors import AbrError

ABR = ("abr",)
"""The program every argv starts with (``abr fleet up`` swaps in ``python -m abrstack``)."""

MAX_EDGES = 64
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
"""Service names double as Kubernetes names and Via pseudonyms (RFC 1123 labels)."""
SIZE_RE = re.compile(r"\d+(\.\d+)?\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?", re.IGNORECASE)
POLICIES = ("hrw", "random")
"""Steering policies: rendezvous hashing with bounded load, or a random edge (DNS round-robin)."""


class FleetSpecError(AbrError):
    """The fleet spec is not valid (one sentence naming the field)."""


@dataclass(frozen=True)
class OriginSpec:
    """The origin: serves the media folder (or an external one at ``url``)."""

    name: str = "origin"
    """Service name."""
    port: int = 0
    """HTTP port (0: any free one, local only)."""
    url: str | None = None
    """An origin that already runs; then none is started."""
    workers: int = 1
    """Worker processes."""


@dataclass(frozen=True)
class EdgeSpec:
    """One caching node: a client-facing edge, or the shield (an edge whose clients are edges)."""

    name: str
    """Service name; also its ``Via`` pseudonym (``--via-name``)."""
    tier: str = "edge"
    """``edge`` (players) or ``shield`` (edges)."""
    port: int = 0
    """TLS (h1/h2) and QUIC (h3) port (0: any free one, local only)."""
    http_port: int = 0
    """Cleartext HTTP/1.1 port (0: any free one, local only)."""
    cache_size: str = "2GiB"
    """Disk tier bound."""
    memory_size: str = "256MiB"
    """Memory tier bound."""
    workers: int = 1
    """Worker processes."""
    prefetch: int = 2
    """Segments prefetched after a segment request."""


@dataclass(frozen=True)
class SteeringSpec:
    """The steering service (``abr steer``): which edge serves which title."""

    enabled: bool = True
    """Whether to run it."""
    name: str = "steer"
    """Service name."""
    port: int = 0
    """HTTP port (0: any free one, local only)."""
    policy: str = "hrw"
    """``hrw`` (rendezvous hashing with bounded load) or ``random``."""
    load_bound: float = 1.25
    """HRW bound ``c``: an edge above ``ceil(c × mean load)`` is skipped."""
    replicas: int = 1
    """Edges per title."""
    ttl_s: int = 10
    """Steering manifest TTL (HLS ``TTL``, DASH ``ttl``)."""
    health_timeout_s: float = 3.0
    """An edge silent on ``edge.health`` for this long is out."""


@dataclass(frozen=True)
class FillSpec:
    """Proactive fill: on ``title.published`` the edges HRW assigns fetch the title's start."""

    segments: int = 3
    """First K segments of every rendition (0 disables proactive fill)."""
    replicas: int = 1
    """Edges per title that fill (the first ``replicas`` of the title's HRW order)."""


@dataclass(frozen=True)
class FleetSpec:
    """A whole fleet."""

    origin: OriginSpec = field(default_factory=OriginSpec)
    """The origin."""
    edges: tuple[EdgeSpec, ...] = ()
    """Client-facing edges."""
    shield: EdgeSpec | None = None
    """The shield tier (None: edges talk to the origin)."""
    shield_fallback: bool = True
    """When the shield is down, edges go to the origin directly (their second upstream)."""
    steering: SteeringSpec = field(default_factory=SteeringSpec)
    """Steering service."""
    fill: FillSpec = field(default_factory=FillSpec)
    """Proactive fill."""
    redis: str | None = None
    """Event bus URL (None: a private redis-server)."""
    media: str = "media"
    """Media folder the origin serves."""

    @property
    def services(self) -> tuple[str, ...]:
        """Every service's name, in start order."""
        names = [self.origin.name]
        if self.shield is not None:
            names.append(self.shield.name)
        names += [e.name for e in self.edges]
        if self.steering.enabled:
            names.append(self.steering.name)
        return tuple(names)

    def edge_names(self) -> tuple[str, ...]:
        """The client-facing edges' names (the HRW node set)."""
        return tuple(e.name for e in self.edges)


# ---------------------------------------------------------------------- parsing

def _check_keys(where: str, doc: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise FleetSpecError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)}).")


def _section(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, Mapping):
        raise FleetSpecError(f"{key} must be a mapping, not {type(value).__name__}.")
    return value


def _int(where: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise FleetSpecError(f"{where} must be a whole number from {lo} to {hi}, not {v!r}.")
    return v


def _float(where: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise FleetSpecError(f"{where} must be a number from {lo:g} to {hi:g}, not {v!r}.")
    return float(v)


def _bool(where: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise FleetSpecError(f"{where} must be true or false, not {v!r}.")
    return v


def _name(where: str, v: Any) -> str:
    if not isinstance(v, str) or not NAME_RE.fullmatch(v):
        raise FleetSpecError(f"{where} {v!r} must be 1-40 lower-case letters, digits or '-' "
                             "(an RFC 1123 label).")
    return v


def _size(where: str, v: Any) -> str:
    if not isinstance(v, str | int) or isinstance(v, bool) or not SIZE_RE.fullmatch(str(v).strip()):
        raise FleetSpecError(f"{where} {v!r} is not a size (e.g. 512MiB, 2GiB).")
    return str(v).strip()


def _url(where: str, v: Any, schemes: tuple[str, ...]) -> str:
    if not isinstance(v, str) or not re.fullmatch(rf"({'|'.join(schemes)})://[^\s/]+(/\S*)?", v):
        raise FleetSpecError(f"{where} {v!r} is not a {'/'.join(schemes)} URL.")
    return v


def _port(where: str, v: Any) -> int:
    return _int(where, v, 0, 65535)


_EDGE_KEYS = ("port", "http_port", "cache_size", "memory_size", "workers", "prefetch")


def _edge(where: str, name: str, tier: str, doc: Mapping[str, Any]) -> EdgeSpec:
    return EdgeSpec(
        name=name, tier=tier,
        port=_port(f"{where}.port", doc.get("port", 0)),
        http_port=_port(f"{where}.http_port", doc.get("http_port", 0)),
        cache_size=_size(f"{where}.cache_size", doc.get("cache_size", "2GiB")),
        memory_size=_size(f"{where}.memory_size", doc.get("memory_size", "256MiB")),
        workers=_int(f"{where}.workers", doc.get("workers", 1), 1, 64),
        prefetch=_int(f"{where}.prefetch", doc.get("prefetch", 2), 0, 16),
    )


def parse_spec(doc: Any) -> FleetSpec:
    """A :class:`FleetSpec` from a parsed YAML/JSON document; :class:`FleetSpecError` if bad."""
    if not isinstance(doc, Mapping):
        raise FleetSpecError("a fleet spec is a mapping with keys origin, shield, edges, "
                             "steering, fill, redis, media.")
    _check_keys("fleet spec", doc, ("media", "redis", "origin", "shield", "edges", "steering",
                                    "fill"))
    media = doc.get("media", "media")
    if not isinstance(media, str) or not media:
        raise FleetSpecError(f"media must be a folder name, not {media!r}.")
    redis = doc.get("redis")
    if redis is not None:
        redis = _url("redis", redis, ("redis", "rediss", "unix"))

    o = _section(doc, "origin")
    _check_keys("origin", o, ("name", "port", "url", "workers"))
    origin = OriginSpec(
        name=_name("origin.name", o.get("name", "origin")),
        port=_port("origin.port", o.get("port", 0)),
        url=None if o.get("url") is None else _url("origin.url", o["url"], ("http", "https")),
        workers=_int("origin.workers", o.get("workers", 1), 1, 64))

    s = doc.get("shield", False)
    shield: EdgeSpec | None = None
    fallback = True
    if s is True:
        s = {}
    if isinstance(s, Mapping):
        _check_keys("shield", s, ("name", "enabled", "fallback_to_origin", *_EDGE_KEYS))
        if _bool("shield.enabled", s.get("enabled", True)):
            shield = _edge("shield", _name("shield.name", s.get("name", "shield")), "shield", s)
        fallback = _bool("shield.fallback_to_origin", s.get("fallback_to_origin", True))
    elif s is not False and s is not None:
        raise FleetSpecError(f"shield must be true, false or a mapping, not {s!r}.")

    e = _section(doc, "edges")
    _check_keys("edges", e, ("count", "names", "base_port", "base_http_port", *_EDGE_KEYS))
    names = e.get("names")
    if names is not None:
        if not isinstance(names, list) or not names:
            raise FleetSpecError("edges.names must be a non-empty list of names.")
        names = [_name("edges.names[]", n) for n in names]
        if "count" in e and e["count"] != len(names):
            raise FleetSpecError(f"edges.count {e['count']!r} disagrees with the "
                                 f"{len(names)} edges.names.")
    else:
        count = _int("edges.count", e.get("count", 2), 1, MAX_EDGES)
        names = [f"edge-{i}" for i in range(1, count + 1)]
    if len(names) > MAX_EDGES:
        raise FleetSpecError(f"a fleet has at most {MAX_EDGES} edges, not {len(names)}.")
    base_port = _port("edges.base_port", e.get("base_port", 0))
    base_http = _port("edges.base_http_port", e.get("base_http_port", 0))
    for key in ("port", "http_port"):
        if key in e:
            raise FleetSpecError(f"edges.{key}: give edges.base_{key} (edge i gets base + i).")
    edges = []
    for i, n in enumerate(names):
        d = {k: v for k, v in e.items() if k in _EDGE_KEYS}
        d["port"] = base_port + i if base_port else 0
        d["http_port"] = base_http + i if base_http else 0
        edges.append(_edge(f"edges[{n}]", n, "edge", d))

    st = doc.get("steering", {})
    if isinstance(st, bool):
        st = {"enabled": st}
    if not isinstance(st, Mapping):
        raise FleetSpecError(f"steering must be true, false or a mapping, not {st!r}.")
    _check_keys("steering", st, ("enabled", "name", "port", "policy", "load_bound", "replicas",
                                 "ttl_s", "health_timeout_s"))
    policy = st.get("policy", "hrw")
    if policy not in POLICIES:
        raise FleetSpecError(f"steering.policy {policy!r} is unknown (known: {', '.join(POLICIES)}).")
    steering = SteeringSpec(
        enabled=_bool("steering.enabled", st.get("enabled", True)),
        name=_name("steering.name", st.get("name", "steer")),
        port=_port("steering.port", st.get("port", 0)), policy=policy,
        load_bound=_float("steering.load_bound", st.get("load_bound", 1.25), 1.0, 10.0),
        replicas=_int("steering.replicas", st.get("replicas", 1), 1, len(names)),
        ttl_s=_int("steering.ttl_s", st.get("ttl_s", 10), 1, 3600),
        health_timeout_s=_float("steering.health_timeout_s", st.get("health_timeout_s", 3.0),
                                0.5, 300.0))

    f = _section(doc, "fill")
    _check_keys("fill", f, ("segments", "replicas"))
    fill = FillSpec(segments=_int("fill.segments", f.get("segments", 3), 0, 100),
                    replicas=_int("fill.replicas", f.get("replicas", 1), 1, len(names)))

    spec = FleetSpec(origin=origin, edges=tuple(edges), shield=shield, shield_fallback=fallback,
                     steering=steering, fill=fill, redis=redis, media=media)
    _check_unique(spec)
    return spec


def _check_unique(spec: FleetSpec) -> None:
    seen: set[str] = set()
    for n in spec.services:
        if n in seen:
            raise FleetSpecError(f"two services are named {n!r}; every name must be its own.")
        seen.add(n)
    ports: dict[int, str] = {}
    nodes = [*spec.edges, *([spec.shield] if spec.shield else [])]
    fixed = [(spec.origin.port, spec.origin.name), (spec.steering.port, spec.steering.name)]
    fixed += [(p, n.name) for n in nodes for p in (n.port, n.http_port)]
    for p, n in fixed:
        if p and p in ports and ports[p] != n:
            raise FleetSpecError(f"port {p} is given to both {ports[p]} and {n}.")
        if p and p in ports and ports[p] == n:
            raise FleetSpecError(f"{n} has port {p} twice (TLS and cleartext need their own).")
        if p:
            ports[p] = n


def load_spec(path: Path) -> FleetSpec:
    """Read and validate a YAML fleet spec."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetSpecError(f"cannot read the fleet spec {path}: {exc}.") from None
    if len(text) > 1_000_000:
        raise FleetSpecError(f"the fleet spec {path} is larger than 1 MB.")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise FleetSpecError(f"the fleet spec {path} is not valid YAML{at}.") from None
    try:
        return parse_spec(doc)
    except FleetSpecError as exc:
        raise FleetSpecError(f"{path}: {exc}") from None


def shorthand(edges: int = 2, shield: bool = False, steering: bool = True,
              redis: str | None = None, origin_url: str | None = None,
              media: str = "media") -> FleetSpec:
    """The spec that ``--edges N --shield`` stand for."""
    doc: dict[str, Any] = {"media": media, "edges": {"count": edges}, "shield": shield,
                           "steering": {"enabled": steering}, "redis": redis,
                           "origin": {"url": origin_url} if origin_url else {}}
    return parse_spec(doc)


# ------------------------------------------------------------------ command lines

def upstreams_of(spec: FleetSpec, node: EdgeSpec, urls: Mapping[str, str]) -> list[str]:
    """``--origin`` URLs of an edge, in failover order: the shield's edges go to the shield
    first and (with ``shield_fallback``) to the origin when the shield is down."""
    origin = spec.origin.url or urls[spec.origin.name]
    if node.tier == "shield" or spec.shield is None:
        return [origin]
    out = [urls[spec.shield.name]]
    if spec.shield_fallback:
        out.append(origin)
    return out


def origin_argv(spec: FleetSpec, *, media: Path | str | None = None, host: str = "127.0.0.1",
                port: int | None = None, access_log: str = "off",
                program: Sequence[str] = ABR, redis_url: str | None = None) -> list[str]:
    """``abr origin`` for the spec's origin (its catalog follows ``redis_url``'s titles events)."""
    return [*program, "origin", "--media", str(media if media is not None else spec.media),
            "--host", host, "--port", str(spec.origin.port if port is None else port),
            "--workers", str(spec.origin.workers), "--access-log", access_log,
            *(["--redis", redis_url] if redis_url else [])]


def edge_argv(spec: FleetSpec, node: EdgeSpec, *, urls: Mapping[str, str], cache_dir: Path | str,
              redis_url: str | None = None, host: str = "127.0.0.1", port: int | None = None,
              http_port: int | None = None, access_log: str = "off",
              program: Sequence[str] = ABR) -> list[str]:
    """``abr edge`` for one node (edge or shield). ``urls`` maps service names to base URLs
    (the origin's unless ``origin.url`` is set, and the shield's)."""
    argv = [*program, "edge"]
    for u in upstreams_of(spec, node, urls):
        argv += ["--origin", u]
    argv += ["--host", host, "--port", str(node.port if port is None else port),
             "--http-port", str(node.http_port if http_port is None else http_port),
             "--cache-dir", str(cache_dir), "--cache-size", node.cache_size,
             "--memory-size", node.memory_size, "--workers", str(node.workers),
             "--prefetch", str(node.prefetch), "--via-name", node.name,
             "--access-log", access_log]
    if redis_url:
        argv += ["--redis", redis_url]
        if node.tier == "edge" and spec.fill.segments > 0:
            argv += ["--fleet-edges", ",".join(spec.edge_names()),
                     "--fill-segments", str(spec.fill.segments),
                     "--fill-replicas", str(spec.fill.replicas)]
    return argv


def steer_argv(spec: FleetSpec, *, urls: Mapping[str, str], redis_url: str | None,
               host: str = "127.0.0.1", port: int | None = None,
               program: Sequence[str] = ABR) -> list[str]:
    """``abr steer`` for the spec's steering service; ``urls`` gives each edge's base URL."""
    st = spec.steering
    argv = [*program, "steer", "--host", host, "--port", str(st.port if port is None else port),
            "--policy", st.policy, "--load-bound", f"{st.load_bound:g}",
            "--replicas", str(st.replicas), "--ttl", str(st.ttl_s),
            "--health-timeout", f"{st.health_timeout_s:g}"]
    for e in spec.edges:
        argv += ["--edge", f"{e.name}={urls[e.name]}"]
    if redis_url:
        argv += ["--redis", redis_url]
    return argv
