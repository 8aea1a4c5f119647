"""Autoscaling rehearsal: a day of players on one edge Deployment, with a "new season"
premiere, replayed through the edges' HPA rule as `abr fleet k8s` renders it
(abrstack/k8s_scale.py): every 15 s, desired = ceil(current × metric / target) per metric
(bytes/s per pod through the Prometheus Adapter's 1-minute rate, and CPU), skipped within the
0.1 tolerance, the larger of the two; the scale-up and scale-down policies and stabilisation
windows of the rendered ``behavior``; new pods serve 30 s after they are asked for (start and
readiness).

The capacity per pod is the one bench/load.py measured (README: 150 top-rung players per edge
pod, k8s_scale.PLAYERS_PER_POD); every player is counted at the top rung (the worst case).
Goals: no minute above the capacity per pod; at most 6 scale events in any hour outside the
premiere (its first two hours).

    .venv/bin/python bench/autoscale.py [--peak 4000] [--spike 3.0] [--ramp-min 5]
                                        [--start-delay-s 30] [--noise 0.03] [--seed 1]
                                        [--out out/autoscale]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import deque
from pathlib import Path

from abrstack import k8s_scale as ks

SYNC_S = 15
"""kube-controller-manager's --horizontal-pod-autoscaler-sync-period."""
CPU_M_PER_PLAYER = 0.58 * 1000 / ks.PLAYERS_PER_POD
"""bench/load.py's h3 run: ~0.58 edge cores for 150 players (11-12 CPU-s over ~20 s)."""


def players_at(minute: float, peak: float, spike: float, spike_at: float, ramp_min: float) -> float:
    """Concurrent players: a day curve (trough at 05:00 at 12% of the evening peak at 21:00)
    plus a premiere at ``spike_at`` that rises to ``spike`` × the day's level within
    ``ramp_min`` minutes and decays with a 45-minute time constant."""
    h = minute / 60
    day = 0.12 + 0.88 * (0.5 - 0.5 * math.cos(2 * math.pi * (h - 5) / 24)) ** 1.6
    # A lunch bump: people watch at noon too.
    day += 0.08 * math.exp(-((h - 12.5) ** 2) / 2)
    level = peak * day
    t = minute - spike_at
    if t > 0:
        rise = min(1.0, t / ramp_min)
        extra = (spike - 1) * rise * (math.exp(-(t - ramp_min) / 45) if t > ramp_min else 1.0)
        level *= 1 + extra
    return level


def simulate(peak: float, spike: float, spike_at_min: float, ramp_min: float,
             start_delay_s: float, lo: int, hi: int,
             behavior: ks.Behavior = ks.BEHAVIOR, noise: float = 0.03,
             seed: int = 1) -> dict[str, object]:
    # Players come and go: a per-minute random walk around the curve (± ``noise``, seeded).
    rng = random.Random(seed)
    wobble = [0.0]
    for _ in range(24 * 60 + 1):
        wobble.append(0.7 * wobble[-1] + rng.gauss(0, noise))
    per_player = ks.TOP_RUNG_BPS / 8
    t, end = 0.0, 24 * 3600.0
    replicas = max(lo, math.ceil(players_at(0, peak, spike, spike_at_min, ramp_min)
                                 * per_player / ks.TARGET_BYTES_PER_S))
    ready = replicas
    pending: deque[tuple[float, int]] = deque()  # (ready at, pods)
    history: list[tuple[float, int]] = []
    changes: list[tuple[float, int]] = []
    window: deque[float] = deque()  # 1-minute rate samples (bytes/s, whole deployment)
    rows = []
    step_s = 5.0
    next_sync = 0.0
    while t < end:
        while pending and pending[0][0] <= t:
            ready += pending.popleft()[1]
        load = players_at(t / 60, peak, spike, spike_at_min, ramp_min) * (1 + wobble[int(t // 60)])
        window.append(load * per_player)
        if len(window) > 60 / step_s:
            window.popleft()
        if t >= next_sync:
            next_sync += SYNC_S
            rate = sum(window) / len(window)  # rate(...[1m]) lags the load
            m_bytes = rate / max(ready, 1)
            m_cpu = load * CPU_M_PER_PLAYER / max(ready, 1)
            rec = max(ks.desired_replicas(ready, m_bytes, ks.TARGET_BYTES_PER_S),
                      ks.desired_replicas(ready, m_cpu,
                                          ks.EDGE_CPU_M * ks.CPU_TARGET_PERCENT / 100))
            rec = max(lo, min(hi, rec))
            new = ks.step(replicas, rec, history, t, changes, lo, hi, behavior)
            history.append((t, rec))
            history[:] = [(a, r) for a, r in history if t - a < behavior.down_window_s]
            if new != replicas:
                changes.append((t, new - replicas))
                if new > replicas:
                    pending.append((t + start_delay_s, new - replicas))
                else:  # removed pods stop taking new players at once (preStop)
                    cut = replicas - new
                    while cut and pending:  # cancel pods not yet ready first
                        at, n = pending.pop()
                        k = min(n, cut)
                        cut -= k
                        if n > k:
                            pending.append((at, n - k))
                    ready -= cut
                replicas = new
        rows.append((t, load, ready, replicas, load * per_player / max(ready, 1)))
        t += step_s
    return {"rows": rows, "changes": changes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peak", type=float, default=4000, help="evening peak players (default 4000)")
    ap.add_argument("--spike", type=float, default=3.0,
                    help="the premiere multiplies the day's level by this (default 3)")
    ap.add_argument("--spike-at", default="20:00", help="premiere time HH:MM (default 20:00)")
    ap.add_argument("--ramp-min", type=float, default=5.0,
                    help="minutes the premiere takes to reach its peak (default 5)")
    ap.add_argument("--start-delay-s", type=float, default=30.0,
                    help="seconds from a scale-up to the new pods serving (default 30)")
    ap.add_argument("--noise", type=float, default=0.03,
                    help="per-minute random walk of the players around the curve (default 0.03)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min", type=int, default=2, dest="lo")
    ap.add_argument("--max", type=int, default=200, dest="hi")
    ap.add_argument("--out", type=Path, default=Path("out/autoscale"))
    args = ap.parse_args(argv)
    try:
        hh, mm = (int(x) for x in args.spike_at.split(":"))
        spike_at = hh * 60 + mm
        if not 0 <= spike_at < 24 * 60:
            raise ValueError
    except ValueError:
        print(f"--spike-at {args.spike_at!r} is not a time of day HH:MM.", file=sys.stderr)
        return 1
    if not (1 <= args.peak <= 1e7 and 1 <= args.spike <= 20 and 0.5 <= args.ramp_min <= 600
            and 0 <= args.start_delay_s <= 900 and 1 <= args.lo <= args.hi <= 10_000
            and 0 <= args.noise <= 0.5):
        print("out of range: --peak 1..1e7, --spike 1..20, --ramp-min 0.5..600, "
              "--start-delay-s 0..900, 1 <= --min <= --max <= 10000, --noise 0..0.5.", file=sys.stderr)
        return 1

    sim = simulate(args.peak, args.spike, spike_at, args.ramp_min, args.start_delay_s,
                   args.lo, args.hi, noise=args.noise, seed=args.seed)
    rows = sim["rows"]
    changes = sim["changes"]
    assert isinstance(rows, list) and isinstance(changes, list)
    cap, target = ks.CAPACITY_BYTES_PER_S, ks.TARGET_BYTES_PER_S
    per_minute: dict[int, float] = {}
    for t, _load, _ready, _rep, per_pod in rows:
        m = int(t // 60)
        per_minute[m] = max(per_minute.get(m, 0.0), per_pod)
    over = [m for m, v in per_minute.items() if v > cap]
    spike_lo, spike_hi = spike_at * 60, spike_at * 60 + 2 * 3600
    outside = [t for t, _ in changes if not spike_lo <= t < spike_hi]
    inside = [t for t, _ in changes if spike_lo <= t < spike_hi]
    # Worst sliding hour (per minute start) outside the premiere.
    worst = 0
    for start in range(0, 24 * 60 - 59):
        a, b = start * 60, start * 60 + 3600
        if a < spike_hi and b > spike_lo:
            continue
        worst = max(worst, sum(1 for t in outside if a <= t < b))
    pod_hours = sum(r[3] for r in rows) * 5 / 3600
    max_rep = max(r[3] for r in rows)
    peak_players = max(r[1] for r in rows)
    print(f"capacity per pod {cap / 1e6:.1f} MB/s ({ks.PLAYERS_PER_POD} players x "
          f"{ks.TOP_RUNG_BPS / 1e6:.3f} Mbit/s, bench/load.py); HPA target {target / 1e6:.1f} MB/s "
          f"({ks.TARGET_FRACTION:.0%}) and CPU {ks.CPU_TARGET_PERCENT}% of {ks.EDGE_CPU_M}m; "
          f"tolerance {ks.TOLERANCE}, sync {SYNC_S} s, new pods serve after {args.start_delay_s:g} s")
    print(f"day: evening peak {args.peak:.0f} players, premiere at {args.spike_at} x{args.spike:g} "
          f"in {args.ramp_min:g} min -> {peak_players:.0f} players at most")
    print(f"{'figure':<52} {'result':>10} {'goal':>8}")
    print(f"{'minutes above the capacity per pod':<52} {len(over):>10} {'0':>8}")
    print(f"{'highest load per pod / capacity (any minute)':<52} "
          f"{max(per_minute.values()) / cap:>10.2f} {'<= 1':>8}")
    print(f"{'scale events in the worst hour outside the premiere':<52} {worst:>10} {'<= 6':>8}")
    print(f"{'scale events outside the premiere (22 h)':<52} {len(outside):>10}")
    print(f"{'scale events in the premiere (2 h)':<52} {len(inside):>10}")
    print(f"{'replicas: fewest / most':<52} {min(r[3] for r in rows):>5} / {max_rep:<3}")
    print(f"{'pod-hours vs a fleet sized for the peak all day':<52} "
          f"{pod_hours:>10.0f} {max_rep * 24:>8}")

    args.out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [r[0] / 3600 for r in rows]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    a1.plot(hours, [r[3] for r in rows], label="replicas (asked)", color="tab:blue")
    a1.plot(hours, [r[2] for r in rows], label="replicas (serving)", color="tab:cyan", lw=0.8)
    a1b = a1.twinx()
    a1b.plot(hours, [r[1] for r in rows], color="tab:gray", lw=0.8, label="players")
    a1.set_ylabel("replicas")
    a1b.set_ylabel("players")
    a1.legend(loc="upper left")
    a1.set_title("edge Deployment under a day of load with a premiere (HPA rehearsal)")
    a2.plot(hours, [r[4] / 1e6 for r in rows], label="load per serving pod", color="tab:orange")
    a2.axhline(target / 1e6, color="tab:green", ls="--", label="HPA target")
    a2.axhline(cap / 1e6, color="tab:red", ls=":", label="capacity per pod (bench/load.py)")
    a2.set_ylabel("MB/s per pod")
    a2.set_xlabel("hour of day")
    a2.legend(loc="upper left")
    for t, _ in changes:
        a2.axvline(t / 3600, color="k", alpha=0.08, lw=0.6)
    fig.tight_layout()
    png = args.out / "autoscale.png"
    fig.savefig(png, dpi=110)
    print(f"plot: {png}")
    ok = not over and worst <= 6
    print("goals: met" if ok else "goals: MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
