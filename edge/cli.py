"""``abr edge``: run a caching edge in front of one or more origins."""

from __future__ import annotations

import argparse
import os
import re
import socket
from pathlib import Path
from typing import Any

from edge import EdgeError


def register(subparsers: Any) -> None:
    """Add ``abr edge`` to the ``abr`` command line."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "edge", help="run a caching edge (h1, h2, h3) in front of origins",
        description="Caching CDN edge in front of one or more origins: a memory tier over a "
                    "disk tier, request collapsing (one origin fetch for concurrent misses, "
                    "also across workers), RFC 9111 freshness with stale-while-revalidate and "
                    "stale-if-error, a circuit breaker and failover per origin, prefetch of "
                    "the next segments and of CMCD 'nor' hints, purge, /healthz and "
                    "Prometheus /metrics. HTTP/1.1 on --http-port; TLS with h2 and http/1.1 "
                    "(ALPN) and HTTP/3 (QUIC) on --port. Sizes take B, KiB, MiB, GiB; times "
                    "are in seconds.")
    p.add_argument("--origin", action="append", required=True, metavar="URL",
                   help="origin base URL (repeat for failover, in order of preference)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="TLS + QUIC port (default 8443)")
    p.add_argument("--http-port", type=int, default=8081,
                   help="cleartext HTTP/1.1 port (default 8081; -1 disables)")
    p.add_argument("--cache-dir", type=Path, default=Path(".edge-cache"),
                   help="disk cache and certificate folder (default .edge-cache)")
    p.add_argument("--cache-size", default="10GiB", help="disk tier bound (default 10GiB)")
    p.add_argument("--memory-size", default="512MiB", help="memory tier bound (default 512MiB)")
    p.add_argument("--disk-policy", default="least-recently-stored",
                   choices=["least-recently-stored", "least-recently-used"],
                   help="disk eviction order (default least-recently-stored: reads stay "
                        "read-only; see README)")
    p.add_argument("--cert", type=Path, help="PEM certificate (default: self-signed, kept "
                                              "in --cache-dir)")
    p.add_argument("--key", type=Path, help="PEM private key for --cert")
    p.add_argument("--redis", default=None, metavar="URL",
                   help="event bus: purge titles that are replaced or deleted (topic titles), take "
                        "QoE beacons on POST /beacon (topic qoe) and publish this edge's load every "
                        "second (topic edge.health); "
                        "default: no bus")
    p.add_argument("--name", default=None, metavar="NAME",
                   help="this edge's name in a fleet: its edge.health heartbeats and its "
                        "steering pathway (default: the --via-name)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--prefetch", type=int, default=2, metavar="K",
                   help="segments to prefetch after a segment request (default 2)")
    p.add_argument("--purge-token-file", type=Path, default=None, metavar="FILE",
                   help="file holding the bearer token for POST /purge (first line); else "
                        "the environment variable ABR_EDGE_PURGE_TOKEN; purge is disabled "
                        "when neither is set. The token is never an argument: argv shows "
                        "in ps")
    # The old flag is refused by name (argparse would otherwise take it as an abbreviation
    # of --purge-token-file and read a file named like the token).
    p.add_argument("--purge-token", action=_RefusedFlag, help=argparse.SUPPRESS)
    p.add_argument("--cache-key-params", action="append", default=[], metavar="PREFIX=a,b",
                   help="query parameters kept in the cache key and sent to the origin for "
                        "paths starting with PREFIX (repeatable; PREFIX= for none, PREFIX=* "
                        "for all); defaults: none for /media/, /titles, /static/, player for "
                        "/play/, all elsewhere; CMCD is always dropped")
    p.add_argument("--negative-ttl", type=float, default=5.0,
                   help="seconds a 404 is cached (default 5)")
    p.add_argument("--connect-timeout", type=float, default=2.0, metavar="S",
                   help="seconds to connect to an origin (default 2)")
    p.add_argument("--read-timeout", type=float, default=10.0, metavar="S",
                   help="seconds an origin may stay silent while answering (default 10)")
    p.add_argument("--retries", type=int, default=2, help="retries of a failed origin GET, with jittered exponential backoff (default 2)")
    p.add_argument("--header-timeout", type=float, default=5.0, metavar="S",
                   help="seconds a client has to send a complete request head; also how long an "
                        "h2 connection may leave PINGs unanswered (default 5)")
    p.add_argument("--send-timeout", type=float, default=30.0, metavar="S",
                   help="seconds a client may take no response bytes before the response is "
                        "cut and its connection or stream closed (1-3600; default 30)")
    p.add_argument("--quic-datagram", type=int, default=1350, metavar="BYTES",
                   help="largest QUIC datagram the edge sends (default 1350; at most the "
                        "peer's max_udp_payload_size is used)")
    p.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop", "auto"],
                   help="event loop (default asyncio; uvloop if installed; auto picks uvloop "
                        "when installed)")
    p.add_argument("--via-name", default=None, metavar="NAME",
                   help="this edge's name in Via (default abr-edge-HOSTNAME-PORT); every edge "
                        "of a fleet needs its own: a request whose Via already names this edge "
                        "is a loop and gets 508. An edge in front of edges (a shield tier) is "
                        "just --origin pointing at the shield")
    p.add_argument("--fleet-edges", default="", metavar="A,B,C",
                   help="every edge's --via-name in this fleet: with --redis and "
                        "--fill-segments, a published title is filled by the edges that "
                        "rendezvous hashing assigns it (default: not in a fleet)")
    p.add_argument("--fill-segments", type=int, default=0, metavar="K",
                   help="proactive fill: manifests and the first K segments of every "
                        "rendition of a published title (0-100; default 0, off)")
    p.add_argument("--fill-replicas", type=int, default=1, metavar="R",
                   help="proactive fill: edges per title (default 1)")
    p.add_argument("--access-log", default="-",
                   help='JSON access log: "-" stderr (default), a file, or "off"')
    p.set_defaults(handler=_run)


def build_config(args: argparse.Namespace) -> Any:
    """Turn parsed arguments into a :class:`edge.server.ServerConfig` (or raise EdgeError)."""
    from urllib.parse import urlparse

    from edge.app import EdgeConfig
    from edge.policy import PolicyConfig, parse_key_params, parse_size
    from edge.server import ServerConfig
    from edge.upstream import UpstreamConfig

    for o in args.origin:
        u = urlparse(o)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise EdgeError(f"--origin {o!r} is not an http(s) URL.")
    try:
        cache_bytes = parse_size(args.cache_size)
        mem_bytes = parse_size(args.memory_size)
    except ValueError as exc:
        raise EdgeError(f"bad size: {exc}.") from None
    if not 1200 <= args.quic_datagram <= 65000:
        raise EdgeError("--quic-datagram must be between 1200 and 65000.")
    if args.workers < 1:
        raise EdgeError("--workers must be at least 1.")
    if not 1 <= args.send_timeout <= 3600:
        raise EdgeError("--send-timeout must be between 1 and 3600 seconds.")
    if (args.cert is None) != (args.key is None):
        raise EdgeError("--cert and --key go together.")
    for f in (args.cert, args.key):
        if f is not None and not f.is_file():
            raise EdgeError(f"cannot read {f}.")
    via_name = args.via_name or default_via_name(args.port)
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}", via_name):
        raise EdgeError(f"--via-name {via_name!r} must be 1-64 token characters "
                        "(letters, digits, -._~ and the like; RFC 9110 §5.6.2).")
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", args.name):
        raise EdgeError(f"--name {args.name!r} must be 1-64 letters, digits, '-', '.' or '_' "
                        "(an HLS PATHWAY-ID).")
    from edge.proactive import parse_fleet

    fleet = parse_fleet(args.fleet_edges)
    if not 0 <= args.fill_segments <= 100:
        raise EdgeError("--fill-segments must be between 0 and 100.")
    if not 1 <= args.fill_replicas <= max(1, len(fleet)):
        raise EdgeError(f"--fill-replicas must be between 1 and the {len(fleet)} --fleet-edges.")
    if fleet and via_name not in fleet:
        raise EdgeError(f"--fleet-edges must name this edge ({via_name}, its --via-name).")
    token = _purge_token(args.purge_token_file)
    try:
        key_params = parse_key_params(args.cache_key_params)
    except ValueError as exc:
        raise EdgeError(f"--cache-key-params: {exc}.") from None
    app = EdgeConfig(
        upstream=UpstreamConfig(tuple(args.origin), args.connect_timeout, args.read_timeout,
                                args.retries),
        cache_dir=args.cache_dir, cache_size_bytes=cache_bytes, memory_size_bytes=mem_bytes,
        disk_policy=args.disk_policy, prefetch_k=args.prefetch, purge_token=token,
        send_timeout_s=args.send_timeout, via_name=via_name, redis_url=args.redis,
        name=args.name or "",
        fleet_edges=fleet, fill_segments=args.fill_segments, fill_replicas=args.fill_replicas,
        policy=PolicyConfig(negative_ttl_s=args.negative_ttl, key_params=key_params),
    )
    return ServerConfig(
        app=app, host=args.host, port=args.port,
        http_port=None if args.http_port < 0 else args.http_port,
        certfile=args.cert, keyfile=args.key, workers=args.workers,
        header_timeout_s=args.header_timeout,
        quic_max_datagram_bytes=args.quic_datagram, event_loop=args.loop,
        access_log=None if args.access_log == "off" else args.access_log,
    )


def default_via_name(port: int) -> str:
    """``abr-edge-HOSTNAME-PORT``: distinct for every edge of a fleet, on one machine or many."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"
    return f"abr-edge-{host}-{port}"


class _RefusedFlag(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error("--purge-token is gone (argv shows in ps): use --purge-token-file FILE "
                     "or the environment variable ABR_EDGE_PURGE_TOKEN")


def _purge_token(path: Path | None) -> str | None:
    """The purge token from ``--purge-token-file`` (first line) or ``$ABR_EDGE_PURGE_TOKEN``."""
    if path is None:
        return os.environ.get("ABR_EDGE_PURGE_TOKEN", "").strip() or None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeError(f"cannot read --purge-token-file {path}: {exc}.") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise EdgeError(f"--purge-token-file {path} is empty.")
    return token


def _run(args: argparse.Namespace) -> int:
    from edge.server import run

    cfg = build_config(args)
    try:
        return run(cfg)
    except OSError as exc:
        raise EdgeError(f"cannot listen on {args.host}: {exc.strerror or exc}.") from None
