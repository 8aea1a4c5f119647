"""Benchmark: simulated sessions per second per ABR algorithm, and a sweep's wall time.

Usage: .venv/bin/python bench/sim.py [--trace DIR] [--seconds S] [--jobs N]

One core: each algorithm runs 48-chunk sessions (pensieve model, Envivio sizes) over the
FCC traces (the first 30 for the slow planners), pass after pass for at least
``--seconds`` of CPU time; the fastest pass is reported (the machine is shared). The baseline, in the same run, is a
robustMPC decision written like the reference script (hongzimao/pensieve test/mpc.py: a
Python loop over all 6^5 plans), timed over a few decisions and scaled to a 47-decision
session. Then the whole sweep (every algorithm, every trace) runs with --jobs = all cores.
Goals (issue 5): bb >= 2,000 sessions/s, robustmpc >= 200, optimal >= 10.

With ``--scheduler local`` only the Dask part runs (issue 15): the sweep of bb, bola and
robustmpc over every trace on a LocalCluster of 1 and then 2 single-threaded worker
processes, sessions/s of each (wall time, cluster start excluded) and the speedup.
With ``--scheduler tcp://HOST:8786`` the same sweep runs once on that cluster's workers.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from player_sim import abr, model  # noqa: E402
from player_sim.cli import DATA_DIR  # noqa: E402
from player_sim.sim import run_sessions  # noqa: E402
from player_sim.sweep import run_sweep  # noqa: E402
from player_sim.traces import load_traces  # noqa: E402
from player_sim.video import load_video  # noqa: E402

GOALS = {"bb": 2000, "robustmpc": 200, "optimal": 10}
SLOW = {"optimal", "marathon"}  # timed on the first 30 traces


def reference_style_decision(sizes: list[list[int]], index: int, buffer_s: float, bw_mbs: float, last: int) -> int:
    """One robustMPC decision as mpc.py computes it (a Python loop over every plan)."""
    rates = [300, 750, 1200, 1850, 2850, 4300]
    best, best_reward = 0, -1e9
    for combo in itertools.product(range(6), repeat=5):
        rebuf, buf, bitrate, smooth, lq = 0.0, buffer_s, 0.0, 0.0, last
        for pos, q in enumerate(combo):
            dt = sizes[q][index + pos + 1] / 1e6 / bw_mbs
            if buf < dt:
                rebuf += dt - buf
                buf = 0.0
            else:
                buf -= dt
            buf += 4
            bitrate += rates[q]
            smooth += abs(rates[q] - rates[lq])
            lq = q
        reward = bitrate / 1000 - 4.3 * rebuf - smooth / 1000
        if reward >= best_reward:
            best, best_reward = combo[0], reward
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=ROOT / "data" / "traces" / "fcc", metavar="DIR",
                    help="trace folder (default data/traces/fcc)")
    ap.add_argument("--traces", type=Path, dest="trace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per algorithm (at least one pass)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--scheduler", help="local (1 vs 2 workers) or tcp://HOST:8786: only the Dask sweep")
    args = ap.parse_args()
    video = load_video(str(DATA_DIR / "videos" / "envivio"))
    traces = load_traces([args.trace])
    m = model.pensieve()
    if args.scheduler:
        return cluster_bench(args.scheduler, video, traces, m)
    print(f"traces: {args.trace} ({len(traces)}), video envivio, pensieve model, 48 chunks per session")

    t0 = time.process_time()
    decisions = 3
    for i in range(decisions):
        reference_style_decision([list(s) for s in video.sizes_bytes], i, 4.0, 0.15, 1)
    ref_s = (time.process_time() - t0) / decisions * 47
    print(f"baseline: reference-style robustMPC, {ref_s:.2f} CPU-s per session ({1 / ref_s:.3f} sessions/s)")

    print(f"{'algorithm':<16} {'sessions/s':>11} {'goal':>6}  (one core, CPU time)")
    for name in abr.names():
        subset = traces if name not in SLOW else traces[:30]
        run_sessions(video, subset[:2], name, m)  # warm the planners' tables
        # best of several passes: the machine is shared, and the minimum is the least disturbed
        best, spent = float("inf"), 0.0
        while spent < args.seconds or best == float("inf"):
            start = time.process_time()
            run_sessions(video, subset, name, m)
            elapsed = time.process_time() - start
            best, spent = min(best, elapsed), spent + elapsed
        rate = len(subset) / best
        goal = GOALS.get(name)
        mark = "" if goal is None else (" ok" if rate >= goal else " BELOW GOAL")
        extra = f"  x{rate * ref_s:,.0f} vs baseline" if name == "robustmpc" else ""
        print(f"{name:<16} {rate:>11,.0f} {goal or '':>6}{mark}{extra}", flush=True)

    start = time.monotonic()
    results = run_sweep(video, traces, abr.names(), m, jobs=args.jobs)
    wall = time.monotonic() - start
    total = sum(len(r) for r in results.values())
    print(f"sweep: {total} sessions ({len(abr.names())} algorithms x {len(traces)} traces) "
          f"in {wall:.1f} s wall with --jobs {args.jobs}")
    return 0


def cluster_bench(scheduler: str, video, traces, m) -> int:  # type: ignore[no-untyped-def]
    """Sessions/s of a sweep on Dask workers (issue 15)."""
    from abrstack.cluster import open_client
    from player_sim.sweep import run_sweep_cluster

    names = ["bb", "bola", "robustmpc"]
    rates: dict[int, float] = {}
    for workers in ([1, 2] if scheduler == "local" else [0]):
        with open_client(scheduler, workers=workers or None, processes=True) as client:
            n = len(client.scheduler_info()["workers"])
            run_sweep_cluster(client, video, traces[:8], names, m)  # warm the workers
            start = time.monotonic()
            results = run_sweep_cluster(client, video, traces, names, m)
            wall = time.monotonic() - start
        total = sum(len(r) for r in results.values())
        rates[n] = total / wall
        print(f"dask sweep: {total} sessions ({', '.join(names)}) on {n} worker(s): "
              f"{wall:.2f} s wall, {rates[n]:,.0f} sessions/s", flush=True)
    if 1 in rates and 2 in rates:
        print(f"speedup 2 vs 1 workers: {rates[2] / rates[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
