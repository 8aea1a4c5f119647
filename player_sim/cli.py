"""``abr sim`` and ``abr abr-list``: the trace simulator's command line (thin shell)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from player_sim.errors import PlayerError

DATA_DIR = Path(__file__).parent / "data"


def register(subparsers: Any) -> None:
    """Add the player simulator's subcommands to the ``abr`` parser."""
    p = subparsers.add_parser(
        "sim",
        help="simulate ABR algorithms over bandwidth traces and report QoE",
        description="Simulate ABR algorithms over bandwidth traces in virtual time and report QoE "
        "(score, bitrate, rebuffering, startup, switches) per algorithm, one session per algorithm and trace. "
        "Without --video/--trace it uses the bundled sample (Envivio sizes, a few FCC and HSDPA traces).",
    )
    p.add_argument("--video", help="title name or folder (media/NAME), HLS/DASH URL, Pensieve video_size_N folder "
                   "or sabre movie JSON (default: the bundled Envivio sizes)")
    p.add_argument("--trace", nargs="+", metavar="TRACE",
                   help="trace files or folders: Pensieve cooked, sabre JSON, Mahimahi "
                   "(default: the bundled sample traces)")
    p.add_argument("--traces", nargs="+", dest="trace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--every", type=int, default=1, metavar="K",
                   help="use every K-th trace file (sorted by name, from the first), K at least 1, "
                   "e.g. 3 for Pensieve's subset (default 1: all)")
    p.add_argument("--abr", default="all", help="comma-separated algorithm names (abr abr-list), or all (default: all)")
    p.add_argument("--model", default="default", choices=["default", "pensieve"],
                   help="simulation model: default (trace latency, startup threshold, buffer cap, "
                   "abandonment) or pensieve (Pensieve's fixed_env.py rules) (default: default)")
    p.add_argument("--buffer-s", type=float, default=60.0, metavar="S",
                   help="maximum buffer in seconds, more than 0 (default 60)")
    p.add_argument("--media", default="media", help="folder of titles for a title name (default: media)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object (default: a table)")
    p.add_argument("--csv", type=Path, help="write one row per session to this file (default: none)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write PNG plots (QoE CDF, bitrate and buffer over time) into this folder (default: none)")
    p.add_argument("--plots", type=Path, dest="out", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--plot-traces", help="comma-separated trace file names to plot over time with --out "
                   "(default: the first 3)")
    p.add_argument("--qoe", choices=["lin", "vmaf"], default="lin",
                   help="lin: QoE_lin on bitrate; vmaf: also the quality-aware QoE on per-segment VMAF "
                   "(Comyco's weights; needs a title encoded with --quality) (default: lin)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (0: all cores; default 1)")
    p.add_argument("--scheduler", help="run the sessions on Dask: 'local' (a LocalCluster of --jobs "
                   "workers) or a scheduler address tcp://HOST:8786 (default: no cluster)")
    p.add_argument("--quiet", action="store_true", help="no progress output (default: progress on stderr)")
    p.set_defaults(handler=run_sim)

    q = subparsers.add_parser("abr-list", help="list the ABR algorithms and their references",
                              description="List the ABR algorithms the player knows (the names --abr "
                              "of abr sim and abr play takes), each with its reference; offline "
                              "algorithms, which see the future (the offline optimum), are marked [offline].")
    q.set_defaults(handler=run_list)


def run_list(args: argparse.Namespace) -> int:
    """Print every algorithm with its reference."""
    from player_sim import abr

    for name in abr.names():
        kind = "" if abr.is_online(name) else " [offline]"
        print(f"{name:<16} {abr.reference(name)}{kind}")
    return 0


def run_sim(args: argparse.Namespace) -> int:
    """Run a sweep and report it."""
    from player_sim import abr, model, report, sweep
    from player_sim.traces import load_traces
    from player_sim.video import load_video

    if args.buffer_s <= 0:
        raise PlayerError("--buffer-s must be positive")
    if args.jobs < 0:
        raise PlayerError("--jobs must be 0 (all cores) or more")
    names = abr.parse_names(args.abr)
    video = load_video(args.video or str(DATA_DIR / "videos" / "envivio"), Path(args.media))
    trace_paths = [Path(t) for t in args.trace] if args.trace else [DATA_DIR / "traces" / "fcc", DATA_DIR / "traces" / "hsdpa"]
    if args.every < 1:
        raise PlayerError("--every must be 1 or more")
    traces = load_traces(trace_paths)[:: args.every]
    if args.plot_traces:
        missing = set(t.strip() for t in args.plot_traces.split(",")) - {t.name for t in traces}
        if missing:
            raise PlayerError(f"--plot-traces names traces that are not in the sweep: {', '.join(sorted(missing))}")
    if args.qoe == "vmaf" and video.vmaf is None:
        raise PlayerError(f"--qoe vmaf needs per-segment VMAF, and video {video.name} has none "
                          "(encode it with abr encode --quality)")
    m = model.by_name(args.model, args.buffer_s)
    jobs = args.jobs or os.cpu_count() or 1
    progress = sweep.Progress(len(names) * len(traces), enabled=not args.quiet)
    progress.per_algorithm = len(traces)
    try:
        if args.scheduler:
            from abrstack.cluster import open_client

            with open_client(args.scheduler, workers=jobs) as client:
                results = sweep.run_sweep_cluster(client, video, traces, names, m, progress)
        else:
            results = sweep.run_sweep(video, traces, names, m, jobs, progress)
    finally:
        progress.close()
    summary = report.summarise(results)
    vsum = None
    if args.qoe == "vmaf":
        from player_sim import qoe_vmaf

        assert video.vmaf is not None
        vsum = qoe_vmaf.summarise({name: [qoe_vmaf.vmaf_qoe(s.records, video.vmaf, s.startup_s) for s in sessions]
                                   for name, sessions in results.items()})
        for name, extra in vsum.items():
            summary[name].update({k: v for k, v in extra.items() if k.startswith("vmaf")})
    if args.json:
        print(report.to_json(summary))
    else:
        print(f"model {m.name}, video {video.name} ({video.levels} levels, {video.segment_s:g}-s segments), "
              f"{len(traces)} traces")
        print(report.table(summary))
        if vsum is not None:
            print(qoe_vmaf.table(vsum))
    if args.csv:
        report.write_csv(results, args.csv)
    if args.out:
        chosen = [t.strip() for t in args.plot_traces.split(",")] if args.plot_traces else None
        for path in report.write_plots(results, args.out, chosen):
            print(f"wrote {path}", file=sys.stderr)
    return 0
