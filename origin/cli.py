"""``abr origin``: serve the titles of a media folder to players and edges."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Adds ``abr origin`` to the ``abr`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "origin",
        help="serve encoded titles (HLS, DASH, catalog, player page)",
        description=(
            "Serve the titles in a media folder over HTTP/1.1: GET /titles (catalog), "
            "/media/NAME/... (manifests and segments), /play/NAME?player=hls|dash "
            "(player page), /healthz, /metrics."
        ),
    )
    parser.add_argument(
        "--media", type=Path, default=Path("media"), help="media folder (default: media)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: 8080)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port with SO_REUSEPORT (default: 1)",
    )
    parser.add_argument(
        "--node-modules",
        type=Path,
        default=None,
        help="where npm installed hls.js and dash.js (default: $ABR_NODE_MODULES, else the project's node_modules)",
    )
    parser.add_argument(
        "--access-log", default="-", metavar="-|FILE|off",
        help='one JSON line per request (ts, method, path, status, bytes, duration_ms): '
             '"-" standard error (default), a file (appended), or "off"',
    )
    parser.add_argument(
        "--redis", default=None, metavar="URL",
        help="keep the catalog in memory, updated from the titles events of the bus at URL "
             "(default: no bus; the media folder is scanned on every catalog request)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from origin.run import ServeConfig, serve

    serve(
        ServeConfig(
            media_dir=args.media.resolve(),
            host=args.host,
            port=args.port,
            workers=args.workers,
            node_modules=args.node_modules,
            access_log=None if args.access_log == "off" else args.access_log,
            redis=args.redis,
        )
    )
    return 0
