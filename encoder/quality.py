"""Objective quality of each rung against the source: VMAF (libvmaf's built-in
vmaf_v0.6.1 model), PSNR (luma) and SSIM, in one ffmpeg process for all rungs.

Each rung is upscaled to the source's size (bicubic), as VMAF's model expects, and both
sides start at PTS 0 (FACTS: segments and sources can start at different times).
Per segment: the mean of the scored frames that fall inside each segment (with 4-s
segments at 30 fps and every 30th frame scored, 4 frames a segment).
Frames are subsampled with libvmaf's `n_subsample` (every 30th frame is scored): on a
640x360 clip every 10th frame cut the cost from 22 to 3.8 CPU-s with VMAF within 0.1 of
scoring every frame, every 30th to 2.2 CPU-s within 0.5; on a 30-s 1080p five-rung ladder
every 10th frame still cost 1.2x the encode, hence 30 (see bench/encode.py --quality). Selecting frames before the filter would save the decoding too, but it raised VMAF
by 3-4 points (its motion feature then compares frames far apart), so it is not used.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from encoder.ffmpeg import run_ffmpeg
from encoder.progress import Progress

VMAF_MODEL = "version=vmaf_v0.6.1"
N_SUBSAMPLE = 30


def rendition_file(folder: Path, rendition: dict[str, Any], out: Path) -> None:
    """Concatenate a rendition's init and media segments into one fMP4 file (valid CMAF)."""
    with out.open("wb") as dst:
        for rel in [rendition["init"], *(s["uri"] for s in rendition["segments"])]:
            with (folder / rel).open("rb") as src:
                shutil.copyfileobj(src, dst)


def build_quality_args(
    source: str, fps: str, size: tuple[int, int], rungs: list[tuple[str, str]], n_subsample: int
) -> list[str]:
    """ffmpeg args scoring each (rung file, log path) against `source`; output discarded."""
    ref = ffmpeg.input(source)["v:0"].filter("fps", fps=fps).filter("setpts", "PTS-STARTPTS")
    ref = ref.filter("format", "yuv420p")
    refs = ref.filter_multi_output("split", len(rungs))
    outs = []
    for i, (path, log) in enumerate(rungs):
        dist = (
            ffmpeg.input(path)
            .video.filter("setpts", "PTS-STARTPTS")
            .filter("scale", size[0], size[1], flags="bicubic")
            .filter("format", "yuv420p")
        )
        scored = ffmpeg.filter(
            [dist, refs[i]],
            "libvmaf",
            model=VMAF_MODEL,
            feature="name=psnr|name=float_ssim",
            n_subsample=n_subsample,
            log_fmt="json",
            log_path=log,
        )
        outs.append(scored)
    streams = [ffmpeg.output(s, "-", f="null") for s in outs]
    return list(ffmpeg.merge_outputs(*streams).get_args())


def segment_scores(frames: list[dict[str, Any]], segments: list[dict[str, Any]],
                   fps: float) -> list[dict[str, float] | None]:
    """Mean VMAF, PSNR and SSIM of the scored frames inside each segment (None: no frame
    of that segment was scored). A frame's time is its number over the scoring rate."""
    ends, t = [], 0.0
    for seg in segments:
        t += seg["duration_s"]
        ends.append(t)
    sums: list[list[float]] = [[0.0, 0.0, 0.0, 0.0] for _ in segments]
    for f in frames:
        at = f["frameNum"] / fps
        i = next((k for k, end in enumerate(ends) if at < end - 1e-6), len(ends) - 1)
        m = f["metrics"]
        acc = sums[i]
        acc[0] += m["vmaf"]
        acc[1] += m["psnr_y"]
        acc[2] += m["float_ssim"]
        acc[3] += 1
    return [None if n == 0 else {"vmaf": round(v / n, 2), "psnr_db": round(p / n, 2),
                                 "ssim": round(s / n, 4), "frames_scored": int(n)}
            for v, p, s, n in sums]


def measure_quality(
    folder: Path, doc: dict[str, Any], source: str, fps: str, progress_mode: str = "auto"
) -> dict[str, dict[str, float]]:
    """VMAF, PSNR and SSIM of every video rendition in `folder`; keyed by rendition id.
    Each segment of `doc` that had a frame scored gets its own `quality` too."""
    video = [r for r in doc["renditions"] if r["kind"] == "video"]
    src = doc["source"]
    size = (src["width"] // 2 * 2, src["height"] // 2 * 2)
    with tempfile.TemporaryDirectory(prefix=".quality-", dir=folder) as tmp:
        rungs = []
        for r in video:
            path = Path(tmp) / f"{r['id']}.mp4"
            rendition_file(folder, r, path)
            rungs.append((str(path), str(Path(tmp) / f"{r['id']}.json")))
        args = build_quality_args(source, fps, size, rungs, N_SUBSAMPLE)
        bar = Progress("quality", doc["duration_s"], progress_mode)
        try:
            run_ffmpeg(args, what="quality measurement", on_progress=bar.update)
        finally:
            bar.close()
        scores = {}
        rate = float(Fraction(fps))
        for r, (_, log) in zip(video, rungs, strict=True):
            result = json.loads(Path(log).read_text())
            pooled = result["pooled_metrics"]
            for seg, q in zip(r["segments"], segment_scores(result.get("frames", []), r["segments"], rate),
                              strict=True):
                if q is not None:
                    seg["quality"] = q
            scores[r["id"]] = {
                "vmaf": round(pooled["vmaf"]["mean"], 2),
                "psnr_db": round(pooled["psnr_y"]["mean"], 2),
                "ssim": round(pooled["float_ssim"]["mean"], 4),
            }
    return scores
