"""Benchmark: how many concurrent players at the ladder's top rate one edge serves with
no edge-caused stall, per protocol, on this machine (players and edge share the cores).

A sample title (720p top rung, 2-s segments) is served by an origin and one edge; the
edge's cache is warmed; then for each protocol N players (`abr play --level top`) stream
the top rendition at once, each shaped to a constant trace at 1.5x the top rung's peak
rate, split over `--jobs` player processes. A session's stall is edge-caused when it
received clearly less than its trace allowed (see player_sim.player.SessionLog). N grows
until a step has an edge-caused stall or a failed session. Prints, per step, the stalls,
download p95, and the CPU-seconds the edge and the players used.
Goals: >= 100 players over h1 and h2, >= 25 over h3.

    .venv/bin/python bench/load.py [--protocol h1,h2,h3] [--steps 25,50,100,150,200]
                                   [--h3-steps 10,25,50,75] [--jobs 2] [--edge-workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from abrstack.stack import ABR, running_stack  # noqa: E402
from encoder.encode import EncodeConfig, encode  # noqa: E402
from encoder.sample import make_sample  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU-seconds (user + system, with reaped children) of every process in a process group."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), after state and ppid
            total += sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
    return total


def run_step(url: str, protocol: str, players: int, jobs: int, trace: Path, cafile: Path,
             datagram: int) -> dict:
    per = [players // jobs + (1 if i < players % jobs else 0) for i in range(jobs)]
    procs = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    for n in per:
        if n == 0:
            continue
        procs.append((n, subprocess.Popen(
            [*ABR, "play", url, "--protocol", protocol, "--players", str(n), "--level", "top",
             "--trace", str(trace), "--cacert", str(cafile), "--json", "--max-retries", "2",
             "--quic-datagram", str(datagram)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    results = []
    for n, p in procs:
        out, err = p.communicate(timeout=900)
        try:
            results.append(json.loads(out)[protocol])
        except (ValueError, KeyError):  # the player process itself failed: all its sessions count as failed
            print(f"  player process failed: {err.strip()[-300:]}", file=sys.stderr)
            results.append({"sessions": 0, "sessions_failed": n, "edge_caused_stalls": 0,
                            "rebuffer_s_mean": 0.0, "download_s_p95": 0.0})
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sessions = sum(r["sessions"] for r in results)
    return {
        "players": players,
        "sessions": sessions,
        "failed": sum(r["sessions_failed"] for r in results),
        "edge_stalls": sum(r["edge_caused_stalls"] for r in results),
        "stalled_s_mean": (sum(r["rebuffer_s_mean"] * r["sessions"] for r in results) / sessions) if sessions else 0,
        "dl_p95_s": max((r["download_s_p95"] for r in results), default=0.0),
        "wall_s": wall,
        "players_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="h1,h2,h3", metavar="LIST",
                    help="comma-separated protocols, of h1, h2, h3 (default h1,h2,h3)")
    ap.add_argument("--protocols", dest="protocol", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ap.add_argument("--steps", default="25,50,100,150,200")
    ap.add_argument("--h3-steps", default="10,25,50,75")
    ap.add_argument("--jobs", type=int, default=2, help="player processes per step (default 2)")
    ap.add_argument("--edge-workers", type=int, default=1)
    ap.add_argument("--duration", type=float, default=20.0, help="title length (default 20 s)")
    ap.add_argument("--quic-datagram", type=int, default=65000,
                    help="QUIC datagram size of edge and players (default 65000: loopback's MTU is 64 KiB)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="abr-bench-load-"))
    try:
        src = work / "src.mp4"
        print("making and encoding a 1280x720 sample ...", file=sys.stderr)
        make_sample(src, args.duration, (1280, 720), 30, progress="none")
        doc = encode(EncodeConfig(source=src, title="t", media_dir=work / "media", segment_s=2.0, progress="none"))
        video = [r for r in doc["renditions"] if r["kind"] == "video"]
        audio = [r for r in doc["renditions"] if r["kind"] == "audio"]
        top_bps = video[-1]["peak_bitrate_bps"] + (audio[0]["peak_bitrate_bps"] if audio else 0)
        trace = work / "trace.json"
        trace.write_text(json.dumps([{"duration_ms": 3_600_000, "bandwidth_kbps": 1.5 * top_bps / 1000,
                                      "latency_ms": 20}]))
        print(f"top rung {video[-1]['id']} peak {top_bps / 1e6:.2f} Mbit/s with audio; players shaped to "
              f"{1.5 * top_bps / 1e6:.2f} Mbit/s each", file=sys.stderr)
        rows = []
        best: dict[str, int] = {}
        with running_stack(work / "media", work / "stack", "--workers", str(args.edge_workers),
                           "--access-log", "off", "--prefetch", "0",
                           "--quic-datagram", str(args.quic_datagram)) as stack:
            edge_pid = stack.pids[1]
            for proto in args.protocol.split(","):
                base = stack.edge_http if proto == "h1" else stack.edge_https
                url = f"{base}/media/t/master.m3u8"
                warm = subprocess.run([*ABR, "play", url, "--protocol", proto, "--level", "top",
                                       "--cacert", str(stack.certfile), "--json",
                                       "--quic-datagram", str(args.quic_datagram)],
                                      capture_output=True, text=True)
                if warm.returncode != 0:
                    print(f"{proto}: warm-up failed: {warm.stderr.strip()[-300:]}", file=sys.stderr)
                    continue
                steps = args.h3_steps if proto == "h3" else args.steps
                for n in (int(x) for x in steps.split(",")):
                    e0 = group_cpu_s(edge_pid)
                    print(f"{proto}: {n} players ...", file=sys.stderr, flush=True)
                    r = run_step(url, proto, n, args.jobs, trace, stack.certfile, args.quic_datagram)
                    r["edge_cpu_s"] = group_cpu_s(edge_pid) - e0
                    r["protocol"] = proto
                    rows.append(r)
                    print(f"  edge stalls {r['edge_stalls']}, failed {r['failed']}, wall {r['wall_s']:.0f} s, "
                          f"edge CPU {r['edge_cpu_s']:.0f} s, players CPU {r['players_cpu_s']:.0f} s",
                          file=sys.stderr, flush=True)
                    if r["edge_stalls"] or r["failed"]:
                        break
                    best[proto] = n
        print(f"\nconcurrent players at the top rung ({top_bps / 1e6:.2f} Mbit/s), each shaped to 1.5x; "
              f"one edge ({args.edge_workers} worker(s)); players in {args.jobs} process(es); 2 cores shared; "
              f"QUIC datagrams {args.quic_datagram} bytes")
        print(f"{'proto':<6} {'players':>7} {'edge stalls':>11} {'failed':>6} {'stall s':>7} {'dl p95 s':>8} "
              f"{'wall s':>6} {'edge CPU-s':>10} {'players CPU-s':>13}")
        for r in rows:
            print(f"{r['protocol']:<6} {r['players']:>7} {r['edge_stalls']:>11} {r['failed']:>6} "
                  f"{r['stalled_s_mean']:>7.2f} {r['dl_p95_s']:>8.3f} {r['wall_s']:>6.0f} "
                  f"{r['edge_cpu_s']:>10.1f} {r['players_cpu_s']:>13.1f}")
        goals = {"h1": 100, "h2": 100, "h3": 25}
        print()
        for proto in args.protocol.split(","):
            got = best.get(proto, 0)
            print(f"{proto}: largest step with no edge-caused stall: {got} players "
                  f"(goal >= {goals[proto]}: {'met' if got >= goals[proto] else 'MISSED'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
