"""Fleet benchmark: a catalog of titles with real segment-size distributions, Zipf(0.8)
popularity, hundreds of concurrent sessions over 4 real edges, for each placement (a random
edge, as DNS round-robin; rendezvous hashing with bounded load, as the steering service
assigns) with and without the shield tier; then how many titles move when 1 of 4 edges is
removed, and how soon a published title's first segments are in its edge (proactive fill).

    .venv/bin/python bench/fleet.py [--titles 60] [--sessions 400] [--concurrency 200]
                                    [--seeds 5] [--json out.json]

The origin is a stand-in process (the outside world: it counts what reaches it) serving
``/media/tN/v1/seg-K.m4s`` bodies of the sizes of the shipped segment-size files
(``data/videos``: bbb and bbb4k from sabre, envivio), one rendition and a window of
``--segments`` segments per title. Sessions arrive as a Poisson process; each starts at
segment 1, watches an exponential number of segments (as viewers drop off), one every
``--interval`` seconds. ``--warmup`` sessions play first and are not counted, so that the
figures are the caches' steady state rather than their first fill.
Goals: HRW hit ratio ≥ 1.5× random; ≤ 1.0 origin request per distinct object with the
shield; removing 1 of 4 edges moves ≤ 30% of titles; publish → first segments in the
assigned edge ≤ 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from abrstack.fleet import running_fleet  # noqa: E402
from abrstack.fleetspec import parse_spec  # noqa: E402
from abrstack.stack import free_port  # noqa: E402
from steer.hrw import assign  # noqa: E402

VIDEOS = ROOT / "data" / "videos"


# ------------------------------------------------------------------ the catalog

def _sources() -> list[list[int]]:
    """Segment sizes in bytes from the shipped files (one mid rung of each)."""
    out = []
    for name, rung in (("bbb_sabre.json", 2), ("bbb4k_sabre.json", 0)):
        d = json.loads((VIDEOS / name).read_text())
        out.append([int(s[rung]) // 8 for s in d["segment_sizes_bits"]])
    env = VIDEOS / "envivio" / "video_size_0"
    if env.exists():
        out.append([int(x) for x in env.read_text().split()])
    return out


def make_catalog(titles: int, segments: int, seed: int, prefix: str = "t") -> dict[str, list[int]]:
    """Title → its segment sizes: a random window of a random source."""
    rng = random.Random(seed)
    sources = _sources()
    cat = {}
    for i in range(titles):
        src = rng.choice(sources)
        at = rng.randrange(0, len(src) - segments)
        cat[f"{prefix}{i}"] = [min(s, 2 << 20) for s in src[at:at + segments]]
    return cat


def zipf_weights(n: int, s: float = 0.8) -> list[float]:
    return [1.0 / (k ** s) for k in range(1, n + 1)]


# ------------------------------------------------------------ stand-in origin

def serve_origin(port: int, catalog_file: Path) -> None:
    """The stand-in origin (run in its own process): segments, playlists, counts."""
    from aiohttp import web

    catalog: dict[str, list[int]] = json.loads(catalog_file.read_text())
    zeros = bytes(2 << 20)
    counts: dict[str, int] = {}
    sent = [0]

    def playlist(title: str) -> str:
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4",
                 "#EXT-X-PLAYLIST-TYPE:VOD", '#EXT-X-MAP:URI="init.mp4"']
        for k in range(1, len(catalog[title]) + 1):
            lines += ["#EXTINF:4.0,", f"seg-{k:05d}.m4s"]
        return "\n".join([*lines, "#EXT-X-ENDLIST", ""])

    async def media(request: web.Request) -> web.Response:
        title, rest = request.match_info["title"], request.match_info["rest"]
        counts[request.path] = counts.get(request.path, 0) + 1
        if title not in catalog:
            return web.Response(status=404)
        immutable = {"Cache-Control": "public, max-age=31536000, immutable",
                     "ETag": f'"{title}-{rest}"'}
        if rest == "master.m3u8":
            body = ("#EXTM3U\n#EXT-X-VERSION:7\n"
                    "#EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS=\"avc1.64001f\"\nv1/index.m3u8\n")
            return web.Response(text=body, content_type="application/vnd.apple.mpegurl",
                                headers={"Cache-Control": "max-age=2"})
        if rest == "manifest.mpd":
            return web.Response(text="<MPD/>", content_type="application/dash+xml",
                                headers={"Cache-Control": "max-age=2"})
        if rest == "v1/index.m3u8":
            return web.Response(text=playlist(title), content_type="application/vnd.apple.mpegurl",
                                headers={"Cache-Control": "max-age=2"})
        if rest == "v1/init.mp4":
            sent[0] += 800
            return web.Response(body=zeros[:800], content_type="video/mp4", headers=immutable)
        if rest.startswith("v1/seg-") and rest.endswith(".m4s"):
            k = int(rest[7:-4])
            if 1 <= k <= len(catalog[title]):
                n = catalog[title][k - 1]
                sent[0] += n
                return web.Response(body=zeros[:n], content_type="video/mp4", headers=immutable)
        return web.Response(status=404)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"counts": counts, "bytes": sent[0]})

    async def reset(request: web.Request) -> web.Response:
        counts.clear()
        sent[0] = 0
        return web.json_response({})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/media/{title}/{rest:.*}", media)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -------------------------------------------------------------------- sessions

def _pct(xs: Sequence[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run_sessions(edges: dict[str, str], catalog: dict[str, list[int]], policy: str,
                       args: argparse.Namespace, sessions: int, seed: int) -> dict[str, Any]:
    """``args.sessions`` sessions arriving as a Poisson process at the rate that keeps about
    ``args.concurrency`` of them playing at once; each picks a title by Zipf(0.8) and an edge
    by ``policy``, then fetches segments 1..L, one every ``args.interval`` seconds (a player
    in steady state, time-compressed)."""
    import aiohttp

    rng = random.Random(seed)
    names = list(edges)
    titles = list(catalog)
    weights = zipf_weights(len(titles))
    picks = []
    for _ in range(sessions):
        t = rng.choices(titles, weights)[0]
        picks.append((t, min(len(catalog[t]), 1 + int(rng.expovariate(1 / args.mean_watch)))))
    # Little's law (L = λW): the arrival rate that keeps ``concurrency`` sessions playing
    rate = args.concurrency / (statistics.mean(w for _, w in picks) * args.interval)
    plan, at = [], 0.0
    for t, watch in picks:
        plan.append((at, t, watch, rng.random()))
        at += rng.expovariate(rate)
    active = dict.fromkeys(names, 0)
    ttfb: list[float] = []
    results: dict[str, Any] = {"requests": 0, "hits": 0, "collapsed": 0, "failed": 0, "bytes": 0}
    playing = [0, 0]  # now, most at once
    samples: list[tuple[float, int]] = []
    last_arrival = plan[-1][0] if plan else 0.0

    async def session(http: aiohttp.ClientSession, start: float, title: str, watch: int,
                      u: float, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + start - time.perf_counter()))
        if policy == "random":
            edge = names[int(u * len(names))]
        else:  # bounded load over the sessions each edge serves now (Mirrokni et al. 2018)
            edge = assign(title, names, active, c=1.25)[0]
        active[edge] += 1
        playing[0] += 1
        playing[1] = max(playing[1], playing[0])
        began = time.perf_counter()
        try:
            for k in range(1, watch + 1):
                await asyncio.sleep(max(0.0, began + (k - 1) * args.interval - time.perf_counter()))
                path = f"/media/{title}/v1/seg-{k:05d}.m4s"
                sent = time.perf_counter()
                try:
                    async with http.get(edges[edge] + path) as r:
                        ttfb.append(time.perf_counter() - sent)
                        body = await r.read()
                        results["requests"] += 1
                        results["bytes"] += len(body)
                        x = r.headers.get("X-Cache", "")
                        if r.status != 200:
                            results["failed"] += 1
                        elif x.split(";")[0] in ("HIT", "STALE", "REVALIDATED"):
                            results["hits"] += 1
                        elif "collapsed" in x:
                            results["collapsed"] += 1
                except aiohttp.ClientError:
                    results["failed"] += 1
            await asyncio.sleep(args.interval)  # the last segment plays
        finally:
            active[edge] -= 1
            playing[0] -= 1

    async def sample(t0: float) -> None:
        while True:
            await asyncio.sleep(0.1)
            samples.append((time.perf_counter() - t0, playing[0]))

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as http:
        t0 = time.perf_counter()
        sampler = asyncio.ensure_future(sample(t0))
        await asyncio.gather(*(session(http, *p, t0) for p in plan))
        sampler.cancel()
    # while sessions arrive, past the ramp-up (the first fifth)
    steady = [n for t, n in samples if 0.2 * last_arrival <= t <= last_arrival] or [0]
    results.update({"seconds": time.perf_counter() - t0,
                    "concurrent_max": playing[1], "concurrent_median": statistics.median(steady),
                    "ttfb_p50_ms": 1000 * _pct(ttfb, 0.5), "ttfb_p95_ms": 1000 * _pct(ttfb, 0.95)})
    return results


def run_config(origin: str, catalog: dict[str, list[int]], policy: str, shield: bool,
               args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import httpx

    httpx.post(origin + "/reset")
    spec = parse_spec({"origin": {"url": origin}, "steering": False, "fill": {"segments": 0},
                       "shield": {"prefetch": args.prefetch} if shield else False,
                       "edges": {"count": args.edges, "memory_size": args.memory_size,
                                 "cache_size": args.cache_size, "prefetch": args.prefetch}})
    name = f"{policy}{'+shield' if shield else ''}"
    with running_fleet(spec, work / name.replace("+", "-")) as fleet:
        edges = {e.name: e.url for e in fleet.edges}
        if args.warmup:  # steady state: the caches filled by earlier viewers, not counted
            asyncio.run(run_sessions(edges, catalog, policy, args, args.warmup, args.seed + 100))
            httpx.post(origin + "/reset")
        r = asyncio.run(run_sessions(edges, catalog, policy, args, args.sessions, args.seed))
    st = httpx.get(origin + "/stats").json()
    seg_counts = [v for k, v in st["counts"].items() if "/seg-" in k]
    seg_fetches = sum(seg_counts)
    n = max(1, r["requests"])
    r.update({"config": name, "hit_ratio": r["hits"] / n,
              "served_without_fetch": (r["hits"] + r["collapsed"]) / n,
              "origin_requests": seg_fetches, "origin_bytes": st["bytes"],
              "origin_distinct_objects": len(seg_counts),
              "origin_requests_per_object": seg_fetches / max(1, len(seg_counts))})
    return r


# ------------------------------------------------------------- placement moves

def moved_share(titles: int, edges: int, seeds: int, loads: bool) -> dict[str, Any]:
    """Share of titles whose edge changes when one of ``edges`` is removed, over every
    removed edge and ``seeds`` catalogs (title names): mean and worst."""
    shares = []
    for seed in range(seeds):
        names = [f"s{seed}-title-{i}" for i in range(titles)]
        nodes = [f"edge-{i}" for i in range(1, edges + 1)]
        w = zipf_weights(titles)

        def place(nodes: list[str], names: list[str] = names, w: list[float] = w
                  ) -> dict[str, str]:
            if not loads:
                return {t: assign(t, nodes)[0] for t in names}
            load = dict.fromkeys(nodes, 0.0)  # popularity-weighted bounded load
            out = {}
            for t, wt in zip(names, w, strict=True):
                e = assign(t, nodes, load, c=1.25)[0]
                load[e] += wt
                out[t] = e
            return out

        before = place(nodes)
        for gone in nodes:
            after = place([n for n in nodes if n != gone])
            shares.append(sum(before[t] != after[t] for t in names) / titles)
    return {"mean": statistics.mean(shares), "worst": max(shares), "runs": len(shares),
            "only_removed_edges_titles_moved": not loads}


# -------------------------------------------------------------- proactive fill

def bench_fill(origin: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Publish titles one by one; time until the assigned edge reports them filled."""
    import httpx

    from abrstack.bus import Publisher, connect
    from abrstack.events import TITLES, title_event
    from abrstack.fleetstatus import metric_sums

    spec = parse_spec({"origin": {"url": origin}, "shield": True, "steering": False,
                       "fill": {"segments": args.fill_k}, "edges": {"count": args.edges}})
    out: list[float] = []
    hits = checked = 0
    with running_fleet(spec, work / "fill") as fleet:
        edges = {e.name: e.url for e in fleet.edges}

        def filled(edge: str) -> float:
            m = metric_sums(httpx.get(edges[edge] + "/metrics").text)
            return m.get("edge_proactive_fill_titles_total{outcome=filled}", 0.0) + \
                m.get("edge_proactive_fill_titles_total{outcome=partial}", 0.0)

        async def publish(title: str) -> None:
            client = connect(fleet.redis.url)
            try:
                await Publisher(client).publish(TITLES, title_event("title.published", title))
            finally:
                await client.aclose()

        time.sleep(1.0)  # the edges' consumer groups exist
        for i in range(args.fill_titles):
            title = f"f{i}"
            owner = assign(title, list(edges))[0]
            before = filled(owner)
            t0 = time.perf_counter()
            asyncio.run(publish(title))
            while filled(owner) <= before and time.perf_counter() - t0 < 10:
                time.sleep(0.01)
            out.append(time.perf_counter() - t0)
            for k in range(1, args.fill_k + 1):
                r = httpx.get(f"{edges[owner]}/media/{title}/v1/seg-{k:05d}.m4s")
                checked += 1
                hits += r.headers.get("x-cache") == "HIT"
    return {"titles": len(out), "k": args.fill_k, "p50_s": statistics.median(out),
            "max_s": max(out), "first_segments_hit": f"{hits}/{checked}"}


# ---------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--titles", type=int, default=60)
    ap.add_argument("--segments", type=int, default=20, help="segments per title")
    ap.add_argument("--sessions", type=int, default=1500, help="measured sessions")
    ap.add_argument("--warmup", type=int, default=1000,
                    help="sessions played first and not counted (steady-state caches; 0: "
                         "measure from empty caches)")
    ap.add_argument("--interval", type=float, default=0.25,
                    help="seconds between a session's segment requests (default 0.25: 4-s "
                         "segments at 16x)")
    ap.add_argument("--concurrency", type=int, default=250,
                    help="sessions playing at once, on average (default 250)")
    ap.add_argument("--edges", type=int, default=4)
    ap.add_argument("--mean-watch", type=float, default=6.0, help="mean segments watched")
    ap.add_argument("--prefetch", type=int, default=0,
                    help="edge prefetch of next segments (default 0: placement alone; "
                         "prefetch hides misses from the hit ratio, not from the origin)")
    ap.add_argument("--memory-size", default="16MiB",
                    help="memory tier per edge (default 16MiB)")
    ap.add_argument("--cache-size", default="64MiB",
                    help="disk tier per edge (default 64MiB: about a quarter of the catalog, "
                         "as an edge never holds a whole catalog)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=10, help="catalogs for the moved-titles share")
    ap.add_argument("--fill-titles", type=int, default=5)
    ap.add_argument("--fill-k", type=int, default=3)
    ap.add_argument("--only", default="", help="comma list of: placement, moved, fill")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--serve-origin", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--catalog", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_origin is not None:
        serve_origin(args.serve_origin, args.catalog)
        return 0
    only = set(filter(None, args.only.split(","))) or {"placement", "moved", "fill"}
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        catalog = make_catalog(args.titles, args.segments, args.seed)
        catalog.update(make_catalog(args.fill_titles, args.segments, args.seed + 1, prefix="f"))
        (work / "catalog.json").write_text(json.dumps(catalog))
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, __file__, "--serve-origin", str(port),
                                 "--catalog", str(work / "catalog.json")])
        try:
            import httpx

            for _ in range(200):
                try:
                    httpx.get(origin + "/healthz", timeout=0.5)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            sizes = [s for t in list(catalog)[:args.titles] for s in catalog[t]]
            print(f"catalog: {args.titles} titles x {args.segments} segments, mean "
                  f"{statistics.mean(sizes) / 1024:.0f} KiB (p95 {_pct(sizes, .95) / 1024:.0f} "
                  f"KiB); Zipf(0.8); {args.sessions} sessions, {args.concurrency} at once, "
                  f"over {args.edges} edges", flush=True)
            if "placement" in only:
                rows = []
                for policy in ("random", "hrw"):
                    for shield in (False, True):
                        r = run_config(origin, catalog, policy, shield, args, work)
                        rows.append(r)
                        print(f"  {r['config']:<13} hit {100 * r['hit_ratio']:5.1f}% (+collapsed "
                              f"{100 * r['served_without_fetch']:5.1f}%)  origin "
                              f"req/object {r['origin_requests_per_object']:.2f}  origin "
                              f"{r['origin_bytes'] / 2**20:7.1f} MiB  TTFB p50 "
                              f"{r['ttfb_p50_ms']:6.1f} ms p95 {r['ttfb_p95_ms']:6.1f} ms  "
                              f"failed {r['failed']}  ({r['requests']} requests, "
                              f"{r['concurrent_median']:.0f} sessions at once (max "
                              f"{r['concurrent_max']}), {r['seconds']:.1f} s)", flush=True)
                report["placement"] = rows
                by = {r["config"]: r for r in rows}
                report["hrw_over_random"] = {
                    "no shield": by["hrw"]["hit_ratio"] / max(1e-9, by["random"]["hit_ratio"]),
                    "shield": by["hrw+shield"]["hit_ratio"]
                    / max(1e-9, by["random+shield"]["hit_ratio"])}
                print(f"  HRW hit ratio / random: {report['hrw_over_random']['no shield']:.2f}x "
                      f"(no shield), {report['hrw_over_random']['shield']:.2f}x (shield); goal "
                      "≥ 1.5x", flush=True)
            if "moved" in only:
                plain = moved_share(args.titles, args.edges, args.seeds, loads=False)
                bounded = moved_share(args.titles, args.edges, args.seeds, loads=True)
                report["moved"] = {"hrw": plain, "hrw_bounded_load": bounded}
                print(f"  remove 1 of {args.edges} edges ({plain['runs']} runs: {args.seeds} "
                      f"catalogs x each edge): HRW moves mean {100 * plain['mean']:.1f}%, worst "
                      f"{100 * plain['worst']:.1f}% of {args.titles} titles; with bounded load "
                      f"mean {100 * bounded['mean']:.1f}%, worst {100 * bounded['worst']:.1f}%; "
                      "goal ≤ 30%", flush=True)
            if "fill" in only:
                f = bench_fill(origin, args, work)
                report["fill"] = f
                print(f"  proactive fill (K={f['k']}): published -> filled in the assigned "
                      f"edge p50 {f['p50_s']:.2f} s, max {f['max_s']:.2f} s over {f['titles']} "
                      f"titles; first segments HIT {f['first_segments_hit']}; goal ≤ 2 s",
                      flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
