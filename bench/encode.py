"""Benchmark: `abr encode` against the equivalent hand-written single ffmpeg command.

A 1080p sample (default 30 s) is encoded by both, in turn, in one run; each run is
measured in a fresh child process (CPU-seconds of everything it started, wall time, peak
resident memory of its largest process). Prints the realtime factor of each and the
ratios. Goal: CPU-seconds ratio <= 1.05 (our packaging and checks cost ~nothing).

    .venv/bin/python bench/encode.py [--duration 30] [--size 1920x1080] [--repeat 1] [--quality]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoder.ffmpeg import ffmpeg_exe  # noqa: E402
from encoder.sample import make_sample  # noqa: E402

MEASURE = r"""
import json, resource, subprocess, sys, time
t = time.monotonic()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.monotonic() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_mib": ru.ru_maxrss / 1024}))
"""


def measure(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["code"] != 0:
        raise SystemExit(f"command failed ({result['code']}): {' '.join(cmd)}")
    return result


def hand_written(src: Path, out: Path, height: int) -> list[str]:
    """The single ffmpeg command a video engineer would write for the default 16:9 ladder."""
    ladder = [(426, 240, 300), (640, 360, 600), (854, 480, 1200), (1280, 720, 2800), (1920, 1080, 5000)]
    ladder = [rung for rung in ladder if rung[1] <= height]
    n = len(ladder)
    for i in range(n + 1):
        (out / f"r{i}").mkdir(parents=True, exist_ok=True)
    graph = f"[0:v:0]fps=fps=30,split={n}" + "".join(f"[s{i}]" for i in range(n)) + ";" + ";".join(
        f"[s{i}]scale={w}:{h}[v{i}]" for i, (w, h, _) in enumerate(ladder))
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "warning", "-i", str(src), "-filter_complex", graph]
    for i in range(n):
        cmd += ["-map", f"[v{i}]"]
    cmd += ["-map", "0:a:0", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
            "-pix_fmt", "yuv420p", "-g", "120", "-keyint_min", "120", "-sc_threshold", "0",
            "-force_key_frames", "expr:gte(t,n_forced*4)"]
    for i, (_, _, kbps) in enumerate(ladder):
        cmd += [f"-b:v:{i}", f"{kbps}k", f"-maxrate:v:{i}", f"{kbps * 11 // 10}k",
                f"-bufsize:v:{i}", f"{kbps * 22 // 10}k"]
    cmd += ["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
            "-f", "dash", "-seg_duration", "4", "-use_template", "1", "-use_timeline", "1",
            "-init_seg_name", "r$RepresentationID$/init.mp4",
            "-media_seg_name", "r$RepresentationID$/seg-$Number%05d$.m4s",
            "-adaptation_sets", "id=0,streams=v id=1,streams=a", "-format_options", "movflags=+cmaf",
            str(out / "manifest.mpd")]
    return cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--repeat", type=int, default=1, help="alternate runs of each (default 1)")
    ap.add_argument("--quality", action="store_true", help="also time `abr encode --quality`")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="abr-bench-encode-"))
    try:
        src = work / "sample.mp4"
        print(f"making a {args.duration:g}-s {args.size} sample ...", file=sys.stderr)
        make_sample(src, args.duration, (w, h), 30, True, progress="none")
        abr = [sys.executable, "-m", "abrstack", "encode", str(src), "--media", str(work / "media"),
               "--progress", "none", "--force"]
        runs: dict[str, list[dict[str, float]]] = {"ffmpeg (hand-written)": [], "abr encode": []}
        if args.quality:
            runs["abr encode --quality"] = []
        for i in range(args.repeat):
            print(f"run {i + 1}/{args.repeat}: ffmpeg ...", file=sys.stderr)
            runs["ffmpeg (hand-written)"].append(measure(hand_written(src, work / f"raw{i}", h)))
            print(f"run {i + 1}/{args.repeat}: abr encode ...", file=sys.stderr)
            runs["abr encode"].append(measure([*abr, "--title", "bench"]))
            if args.quality:
                print(f"run {i + 1}/{args.repeat}: abr encode --quality ...", file=sys.stderr)
                runs["abr encode --quality"].append(measure([*abr, "--title", "benchq", "--quality"]))
        print(f"\nencode of a {args.duration:g}-s {args.size} sample, default ladder, "
              f"h264 veryfast, {args.repeat} run(s) each, alternating (least-disturbed run: the minimum)")
        print(f"{'':24} {'CPU-s':>8} {'wall s':>8} {'peak MiB':>9} {'realtime x':>10}")
        med = {}
        for name, rs in runs.items():
            # On a shared machine other jobs only ever add CPU time: the minimum is the estimate.
            m = {k: min(r[k] for r in rs) for k in ("cpu_s", "wall_s", "peak_mib")}
            med[name] = m
            print(f"{name:24} {m['cpu_s']:8.1f} {m['wall_s']:8.1f} {m['peak_mib']:9.0f} "
                  f"{args.duration / m['wall_s']:10.2f}")
        base, ours = med["ffmpeg (hand-written)"], med["abr encode"]
        ratio = ours["cpu_s"] / base["cpu_s"]
        print(f"\nCPU-seconds ratio abr/ffmpeg: {ratio:.3f} (goal <= 1.05: "
              f"{'met' if ratio <= 1.05 else 'MISSED'}); wall ratio {ours['wall_s'] / base['wall_s']:.3f}; "
              f"peak memory ratio {ours['peak_mib'] / base['peak_mib']:.3f}")
        if args.quality:
            q = med["abr encode --quality"]["cpu_s"] - ours["cpu_s"]
            print(f"--quality adds {q:.1f} CPU-s = {q / ours['cpu_s']:.2f}x the encode's CPU-seconds")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
