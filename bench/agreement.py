"""Benchmark: do `abr play` (real HTTP, wall clock) and `abr sim` (virtual time) agree?

The same title, trace and algorithm run through the trace simulator (default model) and
through a real session over HTTP/1.1 against an origin on 127.0.0.1, shaped to the trace.
Prints, per algorithm and trace, the share of segments where both chose the same level
and the QoE of each. Goal (issue 11): the same level on at least 95% of all segments and
QoE within 5% in at least 9 of 10 runs, robustMPC included.

    .venv/bin/python bench/agreement.py [--abr bb,bola,dynamic,throughput,robustmpc] [--speed 2] [--duration 120]

The title is a video-only sample (the simulator models video segments only; a real
player's audio would take a share of the trace).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoder.encode import EncodeConfig, encode  # noqa: E402
from encoder.sample import make_sample  # noqa: E402
from origin.testing import running_origin  # noqa: E402
from player_sim.model import default  # noqa: E402
from player_sim.player import PlayConfig, Session  # noqa: E402
from player_sim.sim import run_session  # noqa: E402
from player_sim.traces import load_traces  # noqa: E402
from player_sim.video import parse_title  # noqa: E402

TRACES = [ROOT / "player_sim/data/traces/hsdpa/report.2011-02-14_2139CET.json",
          ROOT / "player_sim/data/traces/fcc/test_fcc_trace_216810_http---www.facebook.com_480_0"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--abr", default="bb,bola,dynamic,throughput,robustmpc")
    ap.add_argument("--speed", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=40.0, help="sample length (default 40 s)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="abr-bench-agree-"))
    try:
        src = work / "src.mp4"
        print("making and encoding a video-only 1280x720 sample ...", file=sys.stderr)
        make_sample(src, args.duration, (1280, 720), 30, audio=False, progress="none")
        doc = encode(EncodeConfig(source=src, title="t", media_dir=work / "media", segment_s=2.0,
                                  progress="none"))
        video = parse_title("t", doc)
        model = default()
        rows = []
        with running_origin(work / "media") as base:
            for trace in load_traces(TRACES):
                for name in args.abr.split(","):
                    sim = run_session(video, trace, name, model)
                    log = asyncio.run(Session(PlayConfig(url=f"{base}/media/t/master.m3u8", protocol="h1",
                                                         abr=name, trace=trace, speed=args.speed,
                                                         model=model, cmcd=False)).run())
                    if log.result is None:
                        print(f"{name}: real session failed: {log.error}", file=sys.stderr)
                        continue
                    a = [r.level for r in sim.records]
                    b = [r.level for r in log.result.records]
                    same = sum(x == y for x, y in zip(a, b, strict=False)) / max(len(a), 1)
                    q_sim, q_real = sim.score, log.result.score
                    diff = abs(q_real - q_sim) / max(abs(q_sim), 1e-9)
                    rows.append((trace.name[:28], name, same, q_sim, q_real, diff, sim.rebuffer_s,
                                 log.result.rebuffer_s))
                    print(f"  {trace.name[:28]} {name}: {same:.0%} same choices", file=sys.stderr)
        print(f"\nabr play (real HTTP/1.1, speed {args.speed:g}x) vs abr sim (default model), "
              f"{video.segments} segments of {video.segment_s:g} s, levels {list(video.bitrates_bps)}")
        print(f"{'trace':<29} {'algorithm':<11} {'same level':>10} {'QoE sim':>9} {'QoE real':>9} "
              f"{'|diff|':>7} {'rebuf sim':>9} {'rebuf real':>10}")
        for t, n, same, qs, qr, d, rs, rr in rows:
            print(f"{t:<29} {n:<11} {same:>10.0%} {qs:>9.2f} {qr:>9.2f} {d:>7.1%} {rs:>9.2f} {rr:>10.2f}")
        if rows:
            mean_same = sum(r[2] for r in rows) / len(rows)
            within5 = sum(1 for r in rows if r[5] <= 0.05)
            within10 = sum(1 for r in rows if r[5] <= 0.10)
            print(f"\nmean same-level share {mean_same:.1%}; QoE within 5% in {within5} of {len(rows)} runs, "
                  f"within 10% in {within10}")
            print(json.dumps({"mean_same_level": round(mean_same, 3), "qoe_within_5pct": within5,
                              "qoe_within_10pct": within10, "runs": len(rows)}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
