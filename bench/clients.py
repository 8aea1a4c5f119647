"""Benchmark: the player's HTTP clients against one client for all three protocols (niquests).

The player speaks h1 with aiohttp, h2 with httpx and h3 with aioquic (``edge.h3client``), all
behind ``player_sim.clients.make_client``. niquests (with urllib3-future, jh2 and qh3) speaks
all three from one API. This measures both, on the same edge and the same cached objects:
C sessions at once, each one connection (as a player has), each fetching the top rendition's
segments in a loop for D seconds, unshaped, in one client process. Prints per client and
protocol: throughput, requests/s, and the client process's CPU-milliseconds per MiB (the
figure that decides how many players one core can drive); the edge's CPU per MiB beside it.

niquests is not a dependency of abrstack; the script installs it (pinned) into a folder of
its own under the work directory and imports it only in the worker processes that use it.

    .venv/bin/python bench/clients.py [--sessions 20] [--duration 8] [--protocol h1,h2,h3]
                                      [--quic-datagram 1350] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NIQUESTS = "niquests==3.21.2"


# ----------------------------------------------------------------------------- worker side
async def _ours(proto: str, urls: list[str], sessions: int, duration_s: float, cafile: str,
                datagram: int) -> tuple[int, int]:
    from player_sim.clients import make_client

    async def session(i: int) -> tuple[int, int]:
        got = n = 0
        client = make_client(proto, cafile, quic_datagram_bytes=datagram)

        async def on_chunk(chunk: bytes) -> bool:
            nonlocal got
            got += len(chunk)
            return True

        try:
            end = time.monotonic() + duration_s
            while time.monotonic() < end:
                r = await client.request(urls[(i + n) % len(urls)], {}, on_chunk)
                assert r.status == 200, r.status
                n += 1
        finally:
            await client.close()
        return got, n

    done = await asyncio.gather(*[session(i) for i in range(sessions)])
    return sum(g for g, _ in done), sum(n for _, n in done)


async def _niquests(proto: str, urls: list[str], sessions: int, duration_s: float,
                    cafile: str) -> tuple[int, int]:
    import niquests

    u = urlsplit(urls[0])
    assert u.hostname is not None and u.port is not None

    async def session(i: int) -> tuple[int, int]:
        got = n = 0
        kw: dict[str, object] = {"disable_http2": proto != "h2", "disable_http3": proto != "h3",
                                 "disable_http1": proto != "h1"}
        if proto == "h3":  # straight to QUIC, as the player does (no Alt-Svc round trip)
            kw["quic_cache_layer"] = {(u.hostname, u.port): (u.hostname, u.port)}
        async with niquests.AsyncSession(**kw) as s:  # type: ignore[arg-type]
            end = time.monotonic() + duration_s
            while time.monotonic() < end:
                r = await s.get(urls[(i + n) % len(urls)], stream=True, verify=cafile)
                assert r.status_code == 200, r.status_code
                want = {"h1": "HTTP/1.1", "h2": "HTTP/2", "h3": "HTTP/3"}[proto]
                assert want in str(r.http_version) or r.http_version in (11, 20, 30), r.http_version
                async for chunk in await r.iter_content(64 * 1024):
                    got += len(chunk)
                n += 1
        return got, n

    done = await asyncio.gather(*[session(i) for i in range(sessions)])
    return sum(g for g, _ in done), sum(n for _, n in done)


def worker(argv: list[str]) -> int:
    lib, proto, sessions, duration_s, cafile, datagram, *urls = argv
    t0 = time.monotonic()
    if lib == "ours":
        got, n = asyncio.run(_ours(proto, urls, int(sessions), float(duration_s), cafile,
                                   int(datagram)))
    else:
        got, n = asyncio.run(_niquests(proto, urls, int(sessions), float(duration_s), cafile))
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"bytes": got, "requests": n, "wall_s": wall,
                      "cpu_s": ru.ru_utime + ru.ru_stime}))
    return 0


# ----------------------------------------------------------------------------- driver side
def ensure_niquests(work: Path) -> Path:
    target = work / "niquests"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
                    NIQUESTS], check=True)
    return target


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per run (default 8)")
    ap.add_argument("--protocol", default="h1,h2,h3")
    ap.add_argument("--quic-datagram", type=int, default=1350)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from abrstack.stack import running_stack
    from bench.load import group_cpu_s
    from encoder.encode import EncodeConfig, encode
    from encoder.sample import make_sample

    work = Path(tempfile.mkdtemp(prefix="abr-bench-clients-"))
    rows = []
    try:
        print(f"installing {NIQUESTS} into the work folder ...", file=sys.stderr)
        nq = ensure_niquests(work)
        print("making and encoding a 1280x720 sample ...", file=sys.stderr)
        src = work / "src.mp4"
        make_sample(src, 10.0, (1280, 720), 30, progress="none")
        doc = encode(EncodeConfig(source=src, title="t", media_dir=work / "media",
                                  segment_s=2.0, progress="none"))
        top = [r for r in doc["renditions"] if r["kind"] == "video"][-1]
        segs = sorted(p.name for p in (work / "media" / "t").rglob(f"{top['id']}/seg-*.m4s"))
        rel = next((work / "media" / "t").rglob(f"{top['id']}/seg-*.m4s")).parent.relative_to(
            work / "media")
        with running_stack(work / "media", work / "stack", "--access-log", "off",
                           "--prefetch", "0", "--quic-datagram", str(args.quic_datagram)) as stack:
            edge_pid = stack.pids[1]
            for proto in args.protocol.split(","):
                base = stack.edge_http if proto == "h1" else stack.edge_https
                urls = [f"{base}/media/{rel}/{s}" for s in segs]
                for lib in ("ours", "niquests"):
                    env = dict(os.environ)
                    if lib == "niquests":
                        env["PYTHONPATH"] = f"{nq}{os.pathsep}{env.get('PYTHONPATH', '')}"
                    argv = [sys.executable, __file__, "--worker", lib, proto, str(args.sessions),
                            str(args.duration), str(stack.certfile), str(args.quic_datagram), *urls]
                    subprocess.run([*argv[:5], "1", "0.2", *argv[7:]], env=env,
                                   capture_output=True)  # warm the cache and the imports
                    e0 = group_cpu_s(edge_pid)
                    out = subprocess.run(argv, env=env, capture_output=True, text=True)
                    edge_cpu = group_cpu_s(edge_pid) - e0
                    if out.returncode != 0:
                        print(f"{lib} {proto}: failed: {out.stderr.strip()[-400:]}", file=sys.stderr)
                        rows.append({"client": lib, "protocol": proto, "failed": True})
                        continue
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    mib = r["bytes"] / 2**20
                    row = {"client": lib, "protocol": proto, "sessions": args.sessions,
                           "mib_s": mib / r["wall_s"], "req_s": r["requests"] / r["wall_s"],
                           "client_cpu_ms_per_mib": 1000 * r["cpu_s"] / max(mib, 1e-9),
                           "edge_cpu_ms_per_mib": 1000 * edge_cpu / max(mib, 1e-9)}
                    rows.append(row)
                    print(f"{lib:>8} {proto}: {row['mib_s']:.0f} MiB/s, {row['req_s']:.0f} req/s, "
                          f"client {row['client_cpu_ms_per_mib']:.1f} CPU-ms/MiB", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.sessions} sessions, one connection each, top rung segments, "
          f"{args.duration:g} s per run; QUIC datagrams {args.quic_datagram} bytes; 2 cores shared")
    print(f"{'proto':<5} {'client':<9} {'MiB/s':>7} {'req/s':>7} {'client CPU-ms/MiB':>18} "
          f"{'edge CPU-ms/MiB':>16} {'ratio vs ours (CPU)':>20}")
    ours = {r["protocol"]: r for r in rows if r["client"] == "ours" and not r.get("failed")}
    for r in rows:
        if r.get("failed"):
            print(f"{r['protocol']:<5} {r['client']:<9} failed")
            continue
        base = ours.get(r["protocol"])
        ratio = r["client_cpu_ms_per_mib"] / base["client_cpu_ms_per_mib"] if base else float("nan")
        print(f"{r['protocol']:<5} {r['client']:<9} {r['mib_s']:>7.0f} {r['req_s']:>7.0f} "
              f"{r['client_cpu_ms_per_mib']:>18.1f} {r['edge_cpu_ms_per_mib']:>16.1f} {ratio:>19.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
