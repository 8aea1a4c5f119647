"""Benchmark: per-title ladders against the default ladder at equal quality (issue 14).

Six sources of clearly different complexity, made with ffmpeg's lavfi generators (flat
animation, testsrc2, a mandelbrot zoom, heavy film grain, fast motion, screen text). For
each: the default ladder encoded with VMAF per rung, the per-title ladder (probes, hull,
rungs) encoded the same way, and the BD-rate (VMAF) of per-title against default with the
`bjontegaard` package (Akima interpolation; negative: fewer bits at equal VMAF). CPU-s of
the probes (all their ffmpeg children) against the final per-title encode's. Writes a plot
of every source's (kbps, VMAF) points, the default and per-title rungs and the hull.

Goals (issue 14): mean BD-rate <= -20%, no source worse than 0%, probes <= 0.5x encode CPU-s.

    flock /tmp/abrstack-heavy.lock .venv/bin/python bench/per_title.py [--duration 4]
        [--size 1280x720] [--only NAME,...] [--out bench-per-title.png]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoder.encode import EncodeConfig, encode  # noqa: E402
from encoder.ffmpeg import ffmpeg_exe  # noqa: E402
from encoder.pertitle import per_title_ladder  # noqa: E402

SOURCES = {
    "flat-animation": "color=c=0x3050a0:s={s}:r=30,drawbox=x='mod(t*80,iw)':y=ih/3:w=iw/6:h=ih/4:c=yellow:t=fill",
    "testsrc2": "testsrc2=s={s}:r=30",
    "mandelbrot": "mandelbrot=s={s}:r=30",
    "film-grain": "testsrc2=s={s}:r=30,noise=alls=40:allf=t+u",
    "fast-motion": "life=s={s}:r=30:mold=10:ratio=0.3:death_color=#2060a0:life_color=#f0c040,scale={s}",
    "screen-text": "color=c=white:s={s}:r=30,drawtext=text='%{{pts\\:hms}} abrstack per-title ladder':"
                   "x=20:y='mod(t*40,ih)':fontsize=28:fontcolor=black",
}


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def make_source(name: str, size: str, seconds: float, out: Path) -> Path:
    graph = SOURCES[name].format(s=size)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p", str(out)],
                   check=True, timeout=300)
    return out


def curve(doc: dict) -> tuple[list[float], list[float]]:
    video = sorted((r for r in doc["renditions"] if r["kind"] == "video"),
                   key=lambda r: r["average_bitrate_bps"])
    return [r["average_bitrate_bps"] / 1000 for r in video], [r["quality"]["vmaf"] for r in video]


def run_one(name: str, size: str, seconds: float, tmp: Path) -> dict:
    import av

    src = make_source(name, size, seconds, tmp / f"{name}.mp4")
    with av.open(str(src)) as f:
        w, h = f.streams.video[0].width, f.streams.video[0].height
    base = encode(EncodeConfig(source=src, title=f"{name}-default", media_dir=tmp, quality=True,
                               progress="none"))
    t0 = cpu_children()
    rungs, record = per_title_ladder(str(src), "h264", w, h, seconds)
    probe_cpu = cpu_children() - t0
    ladder = tmp / f"{name}-ladder.json"
    ladder.write_text(json.dumps([{"height": r.height, "bitrate_bps": r.bitrate_bps, "name": r.name}
                                  for r in rungs]))
    t0 = cpu_children()
    encode(EncodeConfig(source=src, title=f"{name}-pt-cpu", media_dir=tmp, ladder=str(ladder),
                        progress="none"))
    encode_cpu = cpu_children() - t0
    per = encode(EncodeConfig(source=src, title=f"{name}-pt", media_dir=tmp, ladder=str(ladder),
                              quality=True, progress="none"))
    return {"name": name, "default": curve(base), "per_title": curve(per), "hull": record["hull"],
            "probe_cpu_s": probe_cpu, "encode_cpu_s": encode_cpu}


def bd_rate(row: dict) -> float | None:
    import bjontegaard as bd

    (ra, da), (rt, dt) = row["default"], row["per_title"]
    if len(ra) < 2 or len(rt) < 2:
        return None
    try:
        return float(bd.bd_rate(ra, da, rt, dt, method="akima", require_matching_points=False))
    except (ValueError, ZeroDivisionError):
        return None


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    for ax, row in zip(axes.flat, rows, strict=False):
        ax.plot([p["kbps"] for p in row["hull"]], [p["vmaf"] for p in row["hull"]], ":", c="grey",
                label="probe hull")
        ax.plot(*row["default"], "o-", label="default ladder")
        ax.plot(*row["per_title"], "s-", label="per-title ladder")
        ax.set_xscale("log")
        ax.set_title(f"{row['name']} (BD-rate {row['bd_rate']:+.0f}%)" if row["bd_rate"] is not None
                     else row["name"])
        ax.set_xlabel("kbps")
        ax.set_ylabel("VMAF")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--only", default=",".join(SOURCES))
    ap.add_argument("--out", type=Path, default=Path("bench-per-title.png"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="abr-bench-pt-") as tmp:
        for name in args.only.split(","):
            row = run_one(name, args.size, args.duration, Path(tmp))
            row["bd_rate"] = bd_rate(row)
            rows.append(row)
            d, p = row["default"], row["per_title"]
            print(f"{name:<15} default " + " ".join(f"{k:.0f}k/{v:.1f}" for k, v in zip(*d, strict=True)))
            print(f"{'':<15} per-title " + " ".join(f"{k:.0f}k/{v:.1f}" for k, v in zip(*p, strict=True)))
            bd = "n/a" if row["bd_rate"] is None else f"{row['bd_rate']:+.1f}%"
            print(f"{'':<15} BD-rate {bd}; probes {row['probe_cpu_s']:.1f} CPU-s vs final encode "
                  f"{row['encode_cpu_s']:.1f} CPU-s ({row['probe_cpu_s'] / row['encode_cpu_s']:.2f}x)",
                  flush=True)
    rates = [r["bd_rate"] for r in rows if r["bd_rate"] is not None]
    probe = sum(r["probe_cpu_s"] for r in rows)
    enc = sum(r["encode_cpu_s"] for r in rows)
    if rates:
        print(f"mean BD-rate {sum(rates) / len(rates):+.1f}% over {len(rates)} sources "
              f"(worst {max(rates):+.1f}%); goal <= -20%, none > 0%")
    print(f"probes {probe:.1f} CPU-s vs final encodes {enc:.1f} CPU-s: {probe / enc:.2f}x (goal <= 0.5x)")
    plot(rows, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
