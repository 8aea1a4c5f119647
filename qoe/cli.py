"""``abr qoe``: the QoE aggregator (consumes the ``qoe`` topic; /metrics, JSON API, dashboard)."""

from __future__ import annotations

import argparse
from typing import Any

from qoe import QoeError


def register(subparsers: Any) -> None:
    """Add ``abr qoe`` to the ``abr`` command line."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "qoe", help="aggregate players' QoE beacons: Prometheus /metrics, JSON API, live dashboard",
        description="QoE aggregator: consumes the players' beacons from the event bus's qoe topic "
                    "(sent to the edges' POST /beacon) in a consumer group and shows live QoE per "
                    "title, edge, ABR algorithm and protocol: sessions, active sessions, bitrate, "
                    "buffer, stalls, rebuffer ratio, startup delay, switches, errors. Serves "
                    "Prometheus /metrics, /api/qoe (JSON), /api/qoe/history and a dashboard page "
                    "at / that updates itself.")
    p.add_argument("--redis", required=True, metavar="URL", help="event bus (redis://host:port/db)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9300, help="HTTP port (default 9300; 0: any free one)")
    p.add_argument("--group", default="qoe-aggregator",
                   help="consumer group (default qoe-aggregator): aggregators in one group share "
                        "the beacons; a new group first reads the beacons the topic retains")
    p.add_argument("--active-s", type=float, default=30.0, metavar="S",
                   help="a session counts as active for S seconds after its last beacon (default 30)")
    p.add_argument("--sample-s", type=float, default=2.0, metavar="S",
                   help="seconds between the dashboard's points (default 2; 300 are kept)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from qoe.server import QoeConfig, run

    if not args.redis.startswith(("redis://", "rediss://", "unix://")):
        raise QoeError(f"--redis {args.redis!r} is not a redis:// URL.")
    if not 0 <= args.port <= 65535:
        raise QoeError("--port must be between 0 and 65535.")
    if not 1 <= args.active_s <= 86_400:
        raise QoeError("--active-s must be between 1 and 86400 seconds.")
    if not 0.1 <= args.sample_s <= 3600:
        raise QoeError("--sample-s must be between 0.1 and 3600 seconds.")
    if not args.group or len(args.group) > 64:
        raise QoeError("--group must be 1-64 characters.")
    return run(QoeConfig(args.redis, args.host, args.port, args.group, args.active_s, args.sample_s))
