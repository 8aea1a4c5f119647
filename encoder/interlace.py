"""Interlaced sources: the stream's field order, confirmed by ffmpeg's `idet` filter on a
sample of frames (streams are often flagged wrongly both ways), then `bwdif` before
scaling (plan.py), one output frame per field (25i -> 50p), as broadcasters' streams do."""

from __future__ import annotations

import re
from typing import Any

from encoder.ffmpeg import ffmpeg_log
from encoder.probe import SourceInfo

SAMPLE_FRAMES = 120
"""Frames idet looks at, from the middle of the source."""
_MULTI = re.compile(r"Multi frame detection:\s*TFF:\s*(\d+)\s*BFF:\s*(\d+)\s*Progressive:\s*(\d+)"
                    r"\s*Undetermined:\s*(\d+)")


def parse_idet(log: str) -> dict[str, int]:
    """idet's multi-frame counts from ffmpeg's log (the last report of the run)."""
    found = _MULTI.findall(log)
    if not found:
        return {"tff": 0, "bff": 0, "progressive": 0, "undetermined": 0}
    tff, bff, prog, und = (int(x) for x in found[-1])
    return {"tff": tff, "bff": bff, "progressive": prog, "undetermined": und}


def is_interlaced(counts: dict[str, int]) -> bool:
    """More frames look interlaced than progressive (undetermined ones do not vote)."""
    return counts["tff"] + counts["bff"] > counts["progressive"]


def detect(info: SourceInfo) -> dict[str, Any]:
    """What title.json records: the flag, idet's counts (only for flagged sources), the verdict."""
    out: dict[str, Any] = {"field_order": info.field_order, "interlaced": False}
    if not info.flagged_interlaced:
        return out
    start = max(0.0, info.duration_s / 2 - SAMPLE_FRAMES / max(info.fps, 1) / 2)
    log = ffmpeg_log(["-ss", f"{start:.3f}", "-i", info.path, "-map", "0:v:0", "-an", "-sn",
                      "-vf", "idet", "-frames:v", str(SAMPLE_FRAMES), "-f", "null", "-"],
                     what=f"interlace detection on {info.path}")
    counts = parse_idet(log)
    out.update(idet=counts, interlaced=is_interlaced(counts))
    return out
