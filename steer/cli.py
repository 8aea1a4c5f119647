"""``abr steer``: the fleet's steering service (content steering for HLS and DASH, 302 routing)."""

from __future__ import annotations

import argparse
import re
from typing import Any
from urllib.parse import urlsplit

from steer.errors import SteerError


def register(subparsers: Any) -> None:
    """Add ``abr steer`` to the ``abr`` command line."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "steer", help="steer players between a fleet's edges (HLS/DASH content steering, 302)",
        description="Steering service for a fleet of edges: assigns each title to edges by "
                    "rendezvous hashing with bounded load over the edges that heart-beat on "
                    "edge.health (an edge silent for --health-timeout seconds is out; an "
                    "overloaded one gets less weight). Serves steered master playlists and MPDs "
                    "(/steered/media/TITLE/FILE, player page /steered/play/TITLE), HLS and DASH "
                    "steering manifests (/steering/hls|dash/TITLE), and redirects GET /media/..., "
                    "/play/..., /static/... to the chosen edge (302) for players without steering.")
    p.add_argument("--edge", action="append", default=[], metavar="NAME=URL",
                   help="an edge of the fleet and its base URL, e.g. edge-a=http://127.0.0.1:8081 "
                        "(repeat; NAME is its --name / --via-name and its pathway id; default: none, at least one is needed)")
    p.add_argument("--redis", default=None, metavar="URL",
                   help="event bus to read edge.health from; without it every edge counts as up")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="HTTP port (default 8090; 0: any free one, printed at start)")
    p.add_argument("--public-url", default=None, metavar="URL",
                   help="this service's URL as players reach it (default http://HOST:PORT)")
    p.add_argument("--policy", default="hrw", choices=["hrw", "random"],
                   help="hrw: rendezvous hashing with bounded load (default); random: any edge "
                        "that is up (as DNS round-robin), for comparison")
    p.add_argument("--load-bound", type=float, default=1.25, metavar="C",
                   help="an edge whose load passes ceil(C x mean) takes no more titles (default 1.25)")
    p.add_argument("--replicas", type=int, default=1,
                   help="edges each title's sessions are spread over (default 1)")
    p.add_argument("--ttl", type=int, default=10, metavar="S",
                   help="steering manifest TTL in seconds (default 10)")
    p.add_argument("--health-timeout", type=float, default=3.0, metavar="S",
                   help="an edge not heard from for this long is out (default 3)")
    p.add_argument("--overload", type=float, default=256.0, metavar="N",
                   help="requests in progress at an edge past which it gets less weight (default 256)")
    p.set_defaults(handler=_run)


def parse_edges(values: list[str]) -> dict[str, str]:
    """``NAME=URL`` options as {name: base URL}; `SteerError` on a bad one."""
    edges: dict[str, str] = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
            raise SteerError(f"--edge {v!r} must be NAME=URL with NAME of 1-64 letters, digits, "
                             "'-', '.' or '_'.")
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/") or u.query:
            raise SteerError(f"--edge {v!r}: {url!r} is not a base URL like http://host:port.")
        if name in edges:
            raise SteerError(f"--edge {name} is given twice.")
        edges[name] = url.rstrip("/")
    if not edges:
        raise SteerError("give the fleet's edges with --edge NAME=URL (at least one).")
    if len(edges) > 256:
        raise SteerError("at most 256 edges.")
    return edges


def build_config(args: argparse.Namespace) -> Any:
    from steer.server import SteerConfig

    edges = parse_edges(args.edge)
    if not 1 <= args.ttl <= 3600:
        raise SteerError("--ttl must be between 1 and 3600 seconds.")
    if not 0.1 <= args.health_timeout <= 600:
        raise SteerError("--health-timeout must be between 0.1 and 600 seconds.")
    if not 1.0 <= args.load_bound <= 100:
        raise SteerError("--load-bound must be between 1 and 100.")
    if not 1 <= args.replicas <= len(edges):
        raise SteerError(f"--replicas must be between 1 and the number of edges ({len(edges)}).")
    if args.overload <= 0:
        raise SteerError("--overload must be positive.")
    if not 0 <= args.port <= 65535:
        raise SteerError("--port must be between 0 and 65535.")
    public = (args.public_url or "").rstrip("/")
    u = urlsplit(public)
    if public and (u.scheme not in ("http", "https") or not u.netloc):
        raise SteerError(f"--public-url {public!r} is not an http(s) URL.")
    return SteerConfig(edges=edges, public_url=public, redis_url=args.redis, ttl_s=args.ttl,
                       stale_s=args.health_timeout, overload=args.overload, c=args.load_bound,
                       policy=args.policy, replicas=args.replicas)


def _run(args: argparse.Namespace) -> int:
    from steer.server import run

    cfg = build_config(args)
    try:
        return run(cfg, args.host, args.port)
    except OSError as exc:
        raise SteerError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.") from None
