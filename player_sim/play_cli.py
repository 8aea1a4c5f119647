"""`abr play`: real headless players over HTTP/1.1, HTTP/2 or HTTP/3 (thin shell)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_link_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--emulate TRACE`` and the link's options (``abr play``, ``abr demo``)."""
    p.add_argument("--emulate", type=Path, metavar="TRACE",
                   help=f"packet-level link emulation (root): {what} (default: off; exclusive with --trace)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="with --emulate: one-way delay per direction, ms (default 0)")
    p.add_argument("--loss", type=float, default=0.0, help="with --emulate: random loss per packet, 0..1 (default 0)")
    p.add_argument("--queue-bytes", type=int, help="with --emulate: drop-tail queue bound (default unbounded)")
    p.add_argument("--aqm", choices=["droptail", "codel"], default="droptail",
                   help="with --emulate: queue discipline, drop-tail or CoDel (RFC 8289) (default droptail)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "play", help="play a title over real HTTP (h1/h2/h3) with an ABR algorithm and report QoE",
        description="Headless players: fetch an HLS master playlist or DASH MPD and its segments over "
        "HTTP/1.1, HTTP/2 or HTTP/3, choose bitrates with an ABR algorithm (the simulator's), optionally "
        "shaped to a bandwidth trace, and report QoE.")
    p.add_argument("url", help="HLS master playlist or DASH MPD URL (origin or edge)")
    p.add_argument("--protocol", choices=["h1", "h2", "h3"], help="default: h1 for http://, h2 for https://")
    p.add_argument("--abr", default="dynamic", help="ABR algorithm (abr abr-list; default dynamic, as dash.js)")
    p.add_argument("--trace", type=Path, help="bandwidth trace file, or a folder (player i gets trace i)")
    add_link_options(p, "players and server in two network namespaces joined by a Mahimahi-style "
                     "link driven by TRACE (Mahimahi, cooked or sabre)")
    p.add_argument("--packet-log", type=Path, help="with --emulate: per-packet queueing delay and drops (CSV)")
    p.add_argument("--compare", metavar="LIST",
                   help="compare protocols (e.g. h1,h2,h3) on the same trace and edge: --sessions each, "
                   "alternating order, means with 95%% intervals and a plot in --out (default: off)")
    p.add_argument("--sessions", type=int, default=3, help="with --compare: sessions per protocol (default 3)")
    p.add_argument("--speed", type=float, default=1.0, help="run trace, shaping and playback X times faster (default 1)")
    p.add_argument("--players", type=int, default=1, help="concurrent sessions (default 1)")
    p.add_argument("--buffer-s", type=float, default=60.0, help="maximum buffer, seconds (default 60)")
    p.add_argument("--out", type=Path, help="write per-session JSON logs, summary.json and report.html here")
    p.add_argument("--no-cmcd", action="store_true", help="do not send CMCD (CTA-5004) data")
    p.add_argument("--cacert", help="CA file to verify the server (e.g. the edge's cert.pem)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="also fetch from this host (repeatable; default port: the scheme's). Without it only "
                   "the manifest's origin, and hosts its request was redirected to, are fetched from")
    p.add_argument("--level", help="always fetch this level: 'top' or an index from 0 (load tests)")
    p.add_argument("--quic-datagram", type=int, default=1350, metavar="BYTES",
                   help="largest QUIC datagram for h3 (default 1350; loopback allows up to 65000)")
    p.add_argument("--max-retries", type=int, default=7,
                   help="retries of a failed request (backoff 0.25 s doubling to 4 s; default 7)")
    p.add_argument("--beacon", metavar="URL",
                   help="send QoE beacons to this URL (an edge's /beacon; default: /beacon on the server "
                   "the manifest URL names, so that an edge with --redis collects them; a server that takes "
                   "none (an origin, an edge without --redis) turns them off for the session)")
    p.add_argument("--beacon-interval", type=float, default=10.0, metavar="S",
                   help="wall seconds between beacons; one more goes at the session's end (default 10)")
    p.add_argument("--no-beacon", action="store_true", help="send no QoE beacons")
    p.add_argument("--json", action="store_true", help="print the aggregate as JSON")
    p.set_defaults(handler=run_play)


def beacon_options(args: argparse.Namespace) -> tuple[str | None, float]:
    """(beacon URL or None, interval) from ``--beacon``, ``--beacon-interval``, ``--no-beacon``."""
    from player_sim.beacon import MAX_INTERVAL_S, MIN_INTERVAL_S, default_beacon_url
    from player_sim.errors import PlayerError

    if not MIN_INTERVAL_S <= args.beacon_interval <= MAX_INTERVAL_S:
        raise PlayerError(f"--beacon-interval must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g} seconds")
    if args.no_beacon:
        if args.beacon:
            raise PlayerError("--beacon and --no-beacon are exclusive")
        return None, args.beacon_interval
    if args.beacon and not args.beacon.startswith(("http://", "https://")):
        raise PlayerError(f"--beacon {args.beacon} is not an http:// or https:// URL")
    return args.beacon or default_beacon_url(args.url), args.beacon_interval


def load_trace_list(path: Path | None) -> list[Any]:
    from player_sim.traces import load_traces

    if path is None:
        return [None]
    return list(load_traces([path]))


def run_play(args: argparse.Namespace) -> int:
    import asyncio

    from player_sim import play_report
    from player_sim.errors import PlayerError
    from player_sim.model import default
    from player_sim.player import PlayConfig, Session, parse_allow_hosts

    if args.players < 1:
        raise PlayerError("--players must be at least 1")
    if not 1200 <= args.quic_datagram <= 65000:
        raise PlayerError("--quic-datagram must be between 1200 and 65000")
    if args.max_retries < 0:
        raise PlayerError("--max-retries must be 0 or more")
    if args.speed <= 0:
        raise PlayerError("--speed must be positive")
    compare = None
    if args.compare is not None:
        compare = [p.strip() for p in args.compare.split(",") if p.strip()]
        if len(compare) < 2 or any(p not in ("h1", "h2", "h3") for p in compare) or len(set(compare)) < len(compare):
            raise PlayerError(f"--compare takes two or more of h1, h2, h3, not {args.compare!r}")
        if args.sessions < 2:
            raise PlayerError("--sessions must be at least 2 for confidence intervals")
        if not args.url.startswith("https://"):
            raise PlayerError("--compare needs an https:// URL (h2 and h3 need TLS; h1 runs over it too)")
    if args.emulate is not None:
        from player_sim import play_emulated

        if args.trace is not None:
            raise PlayerError("--emulate and --trace are exclusive: give one bandwidth trace")
        config = play_emulated.link_config(args)
        why = play_emulated.root_missing()
        if why is None:
            if compare:
                from player_sim import compare_run

                return compare_run.run_emulated(args, config, compare)
            return play_emulated.run(args, config)
        print(why, file=sys.stderr)
        args.trace, args.emulate = args.emulate, None
    elif args.delay_ms or args.loss or args.queue_bytes is not None or args.packet_log is not None:
        raise PlayerError("--delay-ms, --loss, --queue-bytes and --packet-log need --emulate")
    parse_allow_hosts(tuple(args.allow_host))  # a bad value is an error before any session starts
    beacon_url, beacon_interval = beacon_options(args)
    if not args.url.startswith(("http://", "https://")):
        raise PlayerError(f"{args.url} is not an http:// or https:// URL")
    protocol = args.protocol or ("h2" if args.url.startswith("https://") else "h1")
    if protocol in ("h2", "h3") and not args.url.startswith("https://"):
        raise PlayerError(f"{protocol} needs an https:// URL (the edge's TLS port)")
    from player_sim import abr

    if args.abr not in abr.names():
        raise PlayerError(f"unknown ABR algorithm {args.abr!r}; see `abr abr-list`")
    fixed = None
    if args.level is not None:
        if args.level == "top":
            fixed = -1
        elif args.level.isdigit():
            fixed = int(args.level)
        else:
            raise PlayerError(f"--level takes 'top' or a level index, not {args.level!r}")
    traces = load_trace_list(args.trace)
    model = default(args.buffer_s)
    configs = [
        PlayConfig(url=args.url, protocol=protocol, abr=args.abr, trace=traces[i % len(traces)],
                   speed=args.speed, model=model, cmcd=not args.no_cmcd, cafile=args.cacert,
                   insecure=args.insecure, session_id=f"p{i:03d}", max_retries=args.max_retries,
                   fixed_level=fixed, quic_datagram_bytes=args.quic_datagram,
                   allow_hosts=tuple(args.allow_host), beacon_url=beacon_url,
                   beacon_interval_s=beacon_interval)
        for i in range(args.players)
    ]

    if compare:
        from dataclasses import replace

        from player_sim import compare_run

        return compare_run.run_shaped(args, [replace(configs[0], protocol=p, session_id=f"{p}-") for p in compare],
                                      compare)

    async def run_all() -> list[Any]:
        return list(await asyncio.gather(*(Session(c).run() for c in configs)))

    logs = asyncio.run(run_all())
    groups = {protocol: logs}
    agg = play_report.aggregate(groups)
    if args.json:
        print(json.dumps(agg, indent=2))
    else:
        print(play_report.table(agg))
    if args.out:
        play_report.write_logs(groups, args.out)
        (args.out / "summary.json").write_text(json.dumps(agg, indent=2))
        page = play_report.write_html(groups, agg, args.out / "report.html")
        print(f"report: {page}", file=sys.stderr)
    errors = [log.error for log in logs if log.error]
    if errors:
        if len(logs) == 1:
            raise PlayerError(errors[0])
        print(f"{len(errors)} of {len(logs)} sessions failed; first: {errors[0]}", file=sys.stderr)
        return 1
    return 0
