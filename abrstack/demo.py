"""`abr demo` (= `make demo`): the whole stack on a built-in sample.

sample (lavfi) -> `abr encode` -> a fleet in the background (origin, shield, 2 edges, and
the steering service where installed) -> one headless player session over each of HTTP/1.1,
HTTP/2 and HTTP/3 through the edge that rendezvous hashing assigns the title, shaped to a
shipped bandwidth trace -> QoE table by protocol + HTML report. Every process it starts is
stopped at the end, also on Ctrl-C or failure.

The comparison is fair: every protocol meets the same cache state (``--cache``): ``cold``
gives each protocol a fresh fleet (empty caches), ``warm`` fetches every object of the title
through the edge before the first session. The table says which.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from player_sim.play_cli import add_link_options

DEMO_TRACE = Path(__file__).resolve().parent.parent / "player_sim" / "data" / "traces" / "hsdpa" / \
    "report.2011-02-14_2139CET.json"
"""HSDPA 3G trace (Riiser et al., MMSys 2013): 0-9 Mbps, mean 1.9 Mbps, with latencies."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="sample -> encode -> fleet (origin, shield, edges) -> players over h1/h2/h3 -> QoE",
        description="The whole stack on a built-in sample (= make demo): make a synthetic sample "
                    "(kept and reused unless --fresh), encode it with `abr encode`, start a fleet "
                    "(origin, shield, 2 edges; `abr fleet up`) in the background, play one headless "
                    "session over each protocol of --protocol (HTTP/1.1, HTTP/2, HTTP/3) through the "
                    "title's edge, each on the same cache state (--cache), shaped to a bandwidth trace, and "
                    "write a QoE table by protocol, summary.json and report.html to --out. Every "
                    "process it starts is stopped at the end, also on Ctrl-C or failure.")
    p.add_argument("--media", type=Path, default=Path("media"), help="media folder (default media)")
    p.add_argument("--out", type=Path, default=Path("out/demo"),
                   help="folder for the report, session logs and the stack's logs (default out/demo)")
    p.add_argument("--duration", type=float, default=30.0,
                   help="sample length in seconds, more than 0 and at most 3600 (default 30)")
    p.add_argument("--size", default="1280x720",
                   help="sample size WIDTHxHEIGHT in pixels, 16x16 to 7680x4320 (default 1280x720)")
    p.add_argument("--title", default="sample", help="title name (default sample)")
    p.add_argument("--trace", type=Path, default=None, metavar="FILE",
                   help="bandwidth trace for the players (default: the bundled HSDPA 3G trace "
                        "hsdpa/report.2011-02-14_2139CET.json, 0-9 Mbps, mean 1.9 Mbps)")
    p.add_argument("--abr", default="dynamic",
                   help="ABR algorithm of the players (abr abr-list; default dynamic)")
    p.add_argument("--speed", type=float, default=2.0,
                   help="time compression of the sessions: X times faster than real time (default 2)")
    p.add_argument("--protocol", default="h1,h2,h3", metavar="LIST",
                   help="comma-separated protocols to play over, of h1, h2, h3 (default h1,h2,h3)")
    p.add_argument("--protocols", dest="protocol", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_link_options(p, "each protocol's player in a network namespace, the edge reached over a "
                     "Mahimahi-style link driven by TRACE")
    p.add_argument("--cache", default="cold", choices=["cold", "warm"],
                   help="cache state every protocol meets: cold (a fresh fleet with empty caches "
                        "per protocol) or warm (every object of the title fetched through the "
                        "edge first); default cold")
    p.add_argument("--redis", default=None, metavar="URL",
                   help="the event bus the fleet's origin and edges use (default: a private "
                        "redis-server, started with the fleet and stopped at the end)")
    p.add_argument("--fresh", action="store_true",
                   help="remake the sample and re-encode (default: reuse them when present)")
    p.set_defaults(handler=run_demo)


def _terminate_as_interrupt() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def prepare_title(args: argparse.Namespace) -> dict[str, Any]:
    from encoder.encode import EncodeConfig, encode
    from encoder.sample import make_sample, parse_size

    size = parse_size(args.size)
    source = args.media / "sources" / f"{args.title}-{args.size}-{args.duration:g}s.mp4"
    if args.fresh or not source.exists():
        print(f"[1/4] making a {args.duration:g}-s {args.size} sample: {source}", flush=True)
        make_sample(source, args.duration, size)
    else:
        print(f"[1/4] sample exists: {source}", flush=True)
    folder = args.media / args.title
    doc_path = folder / "title.json"
    current = json.loads(doc_path.read_text()) if doc_path.exists() else None
    if args.fresh or current is None or current["source"]["file"] != source.name:
        print(f"[2/4] encoding {source} -> {folder}", flush=True)
        return encode(EncodeConfig(source=source, title=args.title, media_dir=args.media, force=True))
    print(f"[2/4] title exists: {folder} (--fresh re-encodes)", flush=True)
    return current


def run_demo(args: argparse.Namespace) -> int:
    import asyncio

    from abrstack.fleet import running_fleet
    from encoder.cli import summary
    from player_sim import play_report
    from player_sim.errors import PlayerError
    from player_sim.model import default
    from player_sim.player import PlayConfig, Session
    from player_sim.traces import load_traces

    _terminate_as_interrupt()
    protocols = [p.strip() for p in args.protocol.split(",") if p.strip()]
    if not protocols or any(p not in ("h1", "h2", "h3") for p in protocols):
        raise PlayerError(f"--protocol takes h1, h2 and h3, not {args.protocol!r}")
    emulate = None
    if args.emulate is not None:
        from player_sim import play_emulated

        if args.trace is not None:
            raise PlayerError("--emulate and --trace are exclusive: give one bandwidth trace")
        args.packet_log = None
        link = play_emulated.link_config(args)
        why = play_emulated.root_missing()
        if why is None:
            emulate = link
        else:
            print(why, file=sys.stderr)
            args.trace = args.emulate
    elif args.delay_ms or args.loss or args.queue_bytes is not None:
        raise PlayerError("--delay-ms, --loss and --queue-bytes need --emulate")
    trace = load_traces([args.trace or args.emulate or DEMO_TRACE])[0]
    doc = prepare_title(args)
    print(summary(doc, args.media / args.title), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    fleet_dir = args.out / "fleet"
    how = ("cold cache: a fresh fleet (empty caches) per protocol" if args.cache == "cold"
           else "warm cache: every object fetched through the edge before the first session")
    print(f"[3/4] starting a fleet (origin, shield, 2 edges); {how}", flush=True)
    if emulate is not None:
        with running_fleet(_demo_spec(args), fleet_dir) as fleet:
            stack = _as_stack(fleet, args.title)
            _announce(fleet, stack)
            if args.cache == "warm":
                _warm(stack.edge_http, args.media, args.title)
            return _run_emulated(args, emulate, stack, protocols)
    logs: dict[str, list[Any]] = {}
    protocols_seen: dict[str, int] = {}
    fleets = [(p, fleet_dir / p) for p in protocols] if args.cache == "cold" \
        else [(",".join(protocols), fleet_dir)]
    for group, state in fleets:
        if state.exists():
            shutil.rmtree(state)  # cold means cold: no cache left from an earlier run
        with running_fleet(_demo_spec(args), state) as fleet:
            stack = _as_stack(fleet, args.title)
            _announce(fleet, stack)
            if args.cache == "warm":
                _warm(stack.edge_http, args.media, args.title)
            for proto in group.split(","):
                base = stack.edge_http if proto == "h1" else stack.edge_https
                url = f"{base}/media/{args.title}/master.m3u8"
                print(f"[4/4] {proto}: {args.abr} over {url}, trace {trace.name} at "
                      f"{args.speed:g}x, {args.cache} cache", flush=True)
                cfg = PlayConfig(url=url, protocol=proto, abr=args.abr, trace=trace,
                                 speed=args.speed, model=default(), cafile=str(stack.certfile),
                                 session_id=f"demo-{proto}")
                log = asyncio.run(Session(cfg).run())
                if log.error:
                    print(f"      {proto} session failed: {log.error}", flush=True)
                logs[proto] = [log]
            for proto, n in _protocols_in_access_log(stack.access_log).items():
                protocols_seen[proto] = protocols_seen.get(proto, 0) + n
    agg = play_report.aggregate(logs)
    for proto in agg:
        agg[proto]["cache_state"] = args.cache
    print()
    print(f"QoE by protocol, every protocol on a {args.cache} cache "
          f"({'a fresh fleet each' if args.cache == 'cold' else 'the title fetched first'}):")
    print(play_report.table(agg))
    print(f"edge access log protocols: {protocols_seen}")
    play_report.write_logs(logs, args.out)
    (args.out / "summary.json").write_text(json.dumps(agg, indent=2))
    page = play_report.write_html(logs, agg, args.out / "report.html", title="abr demo: QoE by protocol")
    print(f"report: {page}")
    failed = [p for p, ls in logs.items() if ls[0].error]
    if failed:
        raise PlayerError(f"the session over {', '.join(failed)} failed (see {args.out})")
    return 0


def _demo_spec(args: argparse.Namespace) -> Any:
    from abrstack.fleetspec import shorthand

    return shorthand(edges=2, shield=True, media=str(args.media), redis=args.redis)


def _as_stack(fleet: Any, title: str) -> Any:
    """The edge the title is assigned to (rendezvous hashing, as steering would send the
    player), in the shape the sessions take."""
    from abrstack.stack import Stack
    from steer.hrw import assign

    name = assign(title, [e.name for e in fleet.edges])[0]
    edge = next(e for e in fleet.edges if e.name == name)
    return Stack(fleet.origin.url, edge.url, edge.h2, Path(edge.cache_dir) / "tls" / "edge-cert.pem",
                 edge.spki, Path(edge.log).with_name(f"{edge.name}-access.log"),
                 tuple(s.pid for s in fleet.services() if s.pid))


def _announce(fleet: Any, stack: Any) -> None:
    shield = fleet.shield.url if fleet.shield else "none"
    print(f"      origin {fleet.origin.url}; shield {shield}; edges "
          f"{', '.join(e.name + ' ' + e.url for e in fleet.edges)}", flush=True)
    how = "private, stopped at the end" if fleet.redis.pid else "given with --redis"
    print(f"      event bus {fleet.redis.url} ({how})", flush=True)
    print(f"      the title's edge: {stack.edge_http} (h1), {stack.edge_https} (h2, h3); "
          f"SPKI {stack.spki}", flush=True)


def _warm(edge: str, media: Path, title: str) -> None:
    """Fetch every object of ``title`` through ``edge`` (the warm cache state)."""
    import httpx

    root = media / title
    paths = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")
             and p.name != "title.json"]
    with httpx.Client(timeout=30) as c:
        for p in paths:
            c.get(f"{edge}/media/{title}/{p.relative_to(root).as_posix()}")
    print(f"      warmed {len(paths)} objects through {edge}", flush=True)


def _run_emulated(args: argparse.Namespace, link: Any, stack: Any, protocols: list[str]) -> int:
    """Each protocol over the emulated link, one after another; a table of the summaries."""
    from player_sim import play_emulated, play_report
    from player_sim.errors import PlayerError

    merged: dict[str, Any] = {}
    failed = []
    for proto in protocols:
        base = stack.edge_http if proto == "h1" else stack.edge_https
        out = args.out / proto
        play_args = argparse.Namespace(
            url=f"{base}/media/{args.title}/master.m3u8", protocol=proto, abr=args.abr, speed=args.speed,
            players=1, buffer_s=60.0, quic_datagram=1350, max_retries=7, out=out, cacert=None,
            no_cmcd=False, insecure=True, json=True, allow_host=[], level=None, emulate=args.emulate,
            packet_log=args.out / f"{proto}-packets.csv")
        print(f"[4/4] {proto}: {args.abr} over the emulated link ({args.emulate.name})", flush=True)
        if play_emulated.run(play_args, link) != 0:
            failed.append(proto)
        if (out / "summary.json").exists():
            merged.update(json.loads((out / "summary.json").read_text()))
    print()
    print(play_report.table(merged))
    (args.out / "summary.json").write_text(json.dumps(merged, indent=2))
    print(f"reports: {', '.join(str(args.out / p / 'report.html') for p in protocols)}")
    if failed:
        raise PlayerError(f"the session over {', '.join(failed)} failed (see {args.out})")
    return 0


def _protocols_in_access_log(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                proto = json.loads(line).get("protocol", "?")
            except ValueError:
                continue
            counts[proto] = counts.get(proto, 0) + 1
    return counts
