"""Per-title ladders (`abr encode --ladder per-title`): probe encodes, the upper convex
hull of (bitrate, VMAF) across resolutions, and rungs chosen along it.

Probes. Each probe encodes sampled stretches of the source (STRETCHES stretches of
STRETCH_S seconds spread evenly over the title, picked with `select`) at one height and
one CRF with the codec's fastest preset, then scores it with VMAF (`vmaf_v0.6.1`;
`vmaf_4k_v0.6.1` for sources of 2160p and up) against the same stretches of the source at
display size (the probe upscaled, bicubic, as Netflix scores it), every VMAF_SUBSAMPLE-th
frame. A probe is a `ProbeJob`, independent of every other: `run_probes` is a plain map
over a list of them (threads here; a Dask client can submit `run_probe` as tasks).

Hull. The upper convex hull of all (kbps, VMAF) points of every height (Andrew's monotone
chain, upper half, then only its rising part): between two hull points the best quality
for a bitrate is on the chord.

Rungs. The top rung is the lowest hull bitrate whose VMAF reaches `--target-vmaf` (or the
hull's last point, the source's limit). The bottom rung is at `--min-kbps` (or the hull's
first point if that is higher). Between them, rungs are spaced by equal steps of VMAF
(at most `--max-rungs` rungs, no step finer than MIN_VMAF_STEP points), each at the hull
bitrate interpolated for its VMAF and at the height of the nearer hull vertex (in VMAF).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from encoder.errors import LadderError
from encoder.ffmpeg import run_ffmpeg
from encoder.ladder import Rung

PROBE_HEIGHTS = (2160, 1440, 1080, 720, 540, 360, 240, 144)
"""Heights probed (those up to the source's short side, plus the source's own)."""
CRFS: dict[str, tuple[int, ...]] = {
    "h264": (18, 23, 28, 33, 38, 43),
    "vp9": (20, 28, 36, 44, 52, 60),
    "av1": (22, 30, 38, 46, 54, 62),
}
"""The CRF sweep per codec (x264 0-51, libvpx-vp9 0-63, SVT-AV1 1-63)."""
FAST: dict[str, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "ultrafast"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-b:v", "0"],
    "av1": ["-c:v", "libsvtav1", "-preset", "12"],
}
STRETCHES = 3
STRETCH_S = 1.0
MIN_SOURCE_S = 2.0
"""Sources shorter than this are too short to probe."""
VMAF_SUBSAMPLE = 5
MIN_VMAF_STEP = 2.0
MAX_PROBE_RUNGS = 12


@dataclass(frozen=True)
class ProbeJob:
    """One probe: encode the sampled stretches at `width`x`height` and `crf`, score it."""

    source: str
    codec: str
    width: int
    height: int
    crf: int
    ref_width: int
    ref_height: int
    select: str
    """The `select` expression picking the sampled stretches."""
    model: str
    workdir: str


@dataclass(frozen=True)
class ProbePoint:
    height: int
    width: int
    crf: int
    kbps: float
    vmaf: float


def probe_jobs(source: str, codec: str, width: int, height: int, duration_s: float,
               workdir: str) -> list[ProbeJob]:
    """Every probe of a source of `width`x`height` display pixels (landscape or portrait)."""
    if codec not in CRFS:
        raise LadderError(f"--ladder per-title works for h264, vp9 and av1, not {codec}")
    if duration_s < MIN_SOURCE_S:
        raise LadderError(f"the source is {duration_s:.1f} s long, too short to probe for a "
                          f"per-title ladder (at least {MIN_SOURCE_S:g} s)")
    short, long_ = min(width, height), max(width, height)
    heights = sorted({h for h in PROBE_HEIGHTS if h <= short} | {short // 2 * 2})
    period = duration_s / STRETCHES
    length = min(STRETCH_S, period)
    select = f"lt(mod(t\\,{period:.3f})\\,{length:.3f})"
    model = "version=vmaf_4k_v0.6.1" if short >= 2160 else "version=vmaf_v0.6.1"
    jobs = []
    for h in heights:
        lw = max(2, round(h * long_ / short / 2) * 2)
        w, hh = (lw, h) if width >= height else (h, lw)
        for crf in CRFS[codec]:
            jobs.append(ProbeJob(source, codec, w, hh, crf, width // 2 * 2, height // 2 * 2,
                                 select, model, workdir))
    return jobs


def run_probe(job: ProbeJob) -> ProbePoint:
    """Encode and score one probe (two ffmpeg runs); the probe file is removed.

    Both sides are retimed to frame number / rate before scoring: the probe is MP4 (a
    Matroska probe's millisecond timestamps paired frames one apart and cost ~15 VMAF)."""
    out = Path(job.workdir) / f"p{job.height}x{job.width}-{job.crf}.mp4"
    log = out.with_suffix(".json")
    vf = f"select='{job.select}',setpts=N/FRAME_RATE/TB,scale={job.width}:{job.height},format=yuv420p"
    run_ffmpeg(["-i", job.source, "-an", "-sn", "-vf", vf, *FAST[job.codec], "-crf", str(job.crf),
                str(out)], what=f"probe {job.height}p crf {job.crf}")
    frames_s = _duration(out)
    kbps = out.stat().st_size * 8 / 1000 / frames_s
    graph = (f"[0:v]setpts=N/FRAME_RATE/TB,scale={job.ref_width}:{job.ref_height}:flags=bicubic,"
             f"format=yuv420p[d];[1:v]select='{job.select}',setpts=N/FRAME_RATE/TB,"
             f"scale={job.ref_width}:{job.ref_height},format=yuv420p[r];"
             f"[d][r]libvmaf=model={job.model}:n_subsample={VMAF_SUBSAMPLE}:log_fmt=json:"
             f"log_path={log}")
    run_ffmpeg(["-i", str(out), "-i", job.source, "-filter_complex", graph, "-f", "null", "-"],
               what=f"scoring probe {job.height}p crf {job.crf}")
    vmaf = json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"]
    out.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    return ProbePoint(job.height, job.width, job.crf, round(kbps, 1), round(vmaf, 2))


def _duration(path: Path) -> float:
    import av

    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        frames = sum(1 for _ in f.demux(stream) if _.size)
        rate = float(stream.average_rate or 30)
    return max(frames / rate, 1e-3)


def run_probes(jobs: Sequence[ProbeJob], workers: int | None = None,
               on_done: Callable[[int, int], None] | None = None) -> list[ProbePoint]:
    """Run independent probe jobs in parallel; results in job order."""
    workers = workers or max(1, os.cpu_count() or 1)
    done = 0
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run_probe, j) for j in jobs]
        results = []
        for fut in futures:
            results.append(fut.result())
            done += 1
            if on_done:
                on_done(done, len(jobs))
    return results


def upper_hull(points: Sequence[ProbePoint]) -> list[ProbePoint]:
    """The rising part of the upper convex hull in (kbps, VMAF), lowest bitrate first."""
    pts = sorted(points, key=lambda p: (p.kbps, -p.vmaf))
    hull: list[ProbePoint] = []
    for p in pts:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()
        hull.append(p)
    top = max(range(len(hull)), key=lambda i: hull[i].vmaf)
    return hull[: top + 1]


def _cross(o: ProbePoint, a: ProbePoint, b: ProbePoint) -> float:
    return (a.kbps - o.kbps) * (b.vmaf - o.vmaf) - (a.vmaf - o.vmaf) * (b.kbps - o.kbps)


def _kbps_at(hull: list[ProbePoint], vmaf: float) -> tuple[float, int]:
    """Hull bitrate for `vmaf` (linear between vertices) and the height of the nearer vertex."""
    for a, b in zip(hull, hull[1:], strict=False):
        if a.vmaf <= vmaf <= b.vmaf:
            f = 0.0 if b.vmaf == a.vmaf else (vmaf - a.vmaf) / (b.vmaf - a.vmaf)
            return a.kbps + f * (b.kbps - a.kbps), (b.height if f >= 0.5 else a.height)
    return hull[-1].kbps, hull[-1].height


def _vmaf_at(hull: list[ProbePoint], kbps: float) -> float:
    for a, b in zip(hull, hull[1:], strict=False):
        if a.kbps <= kbps <= b.kbps:
            return a.vmaf + (kbps - a.kbps) / (b.kbps - a.kbps) * (b.vmaf - a.vmaf)
    return hull[0].vmaf if kbps < hull[0].kbps else hull[-1].vmaf


def choose_rungs(hull: list[ProbePoint], target_vmaf: float, max_rungs: int,
                 min_kbps: float) -> list[dict[str, Any]]:
    """Rungs along the hull (see the module's doc), lowest first, each with its reason."""
    reached = [p for p in hull if p.vmaf >= target_vmaf]
    top_vmaf = reached[0].vmaf if reached else hull[-1].vmaf
    top_why = (f"lowest hull point reaching VMAF {target_vmaf:g}" if reached
               else f"the source's limit: the hull tops out at VMAF {hull[-1].vmaf:.1f}")
    bottom_kbps = max(min_kbps, hull[0].kbps)
    bottom_vmaf = min(_vmaf_at(hull, bottom_kbps), top_vmaf)
    span = top_vmaf - bottom_vmaf
    count = max(1, min(max_rungs, int(span / MIN_VMAF_STEP) + 1))
    step = span / (count - 1) if count > 1 else 0.0
    rungs: list[dict[str, Any]] = []
    for i in range(count):
        v = bottom_vmaf + i * step
        kbps, height = _kbps_at(hull, v)
        if i == 0:
            kbps, why = bottom_kbps, f"bottom rung at --min-kbps {min_kbps:g} (or the hull's lowest point)"
        elif i == count - 1:
            why = top_why
        else:
            why = f"equal VMAF step of {step:.1f} along the hull"
        if rungs and kbps <= rungs[-1]["kbps"] * 1.05:
            continue
        rungs.append({"height": height, "kbps": round(kbps), "vmaf": round(v, 2), "why": why})
    return rungs


def per_title_ladder(source: str, codec: str, width: int, height: int, duration_s: float, *,
                     target_vmaf: float = 95.0, max_rungs: int = 6, min_kbps: float = 200.0,
                     workers: int | None = None,
                     on_done: Callable[[int, int], None] | None = None,
                     client: Any = None, shared_dir: Path | None = None,
                     ) -> tuple[tuple[Rung, ...], dict[str, Any]]:
    """Probe, hull and choose: the ladder's rungs and the record for title.json.

    With a Dask `client`, the probes run as tasks on its cluster (abrstack.cluster), in a
    temporary folder inside `shared_dir`, which every worker must see at the same path."""
    check_options(target_vmaf, max_rungs, min_kbps)
    with tempfile.TemporaryDirectory(prefix=f".tmp-probes-{os.getpid()}-", dir=shared_dir) as tmp:
        jobs = probe_jobs(source, codec, width, height, duration_s, tmp)
        if client is None:
            points = run_probes(jobs, workers, on_done)
        else:
            from abrstack.cluster import run_jobs

            finished = [0]

            def done(_: int) -> None:
                finished[0] += 1
                if on_done:
                    on_done(finished[0], len(jobs))

            points = run_jobs(client, run_probe, jobs, what="probe", on_done=done)
    hull = upper_hull(points)
    chosen = choose_rungs(hull, target_vmaf, max_rungs, min_kbps)
    rungs = tuple(Rung(c["height"], int(c["kbps"] * 1000), name=f"{c['height']}p-{c['kbps']}k")
                  for c in chosen)
    record = {
        "codec": codec, "target_vmaf": target_vmaf, "max_rungs": max_rungs, "min_kbps": min_kbps,
        "stretches": STRETCHES, "stretch_s": STRETCH_S, "vmaf_subsample": VMAF_SUBSAMPLE,
        "model": jobs[0].model, "probes": [asdict(p) for p in points],
        "hull": [asdict(p) for p in hull], "rungs": chosen,
    }
    return rungs, record


def check_options(target_vmaf: float, max_rungs: int, min_kbps: float) -> None:
    if not 20 <= target_vmaf <= 100:
        raise LadderError(f"--target-vmaf {target_vmaf:g} is out of range (20 to 100)")
    if not 1 <= max_rungs <= MAX_PROBE_RUNGS:
        raise LadderError(f"--max-rungs {max_rungs} is out of range (1 to {MAX_PROBE_RUNGS})")
    if not 16 <= min_kbps <= 100_000:
        raise LadderError(f"--min-kbps {min_kbps:g} is out of range (16 to 100000)")
