"""Synthetic sources made by ffmpeg itself (lavfi): a moving test pattern with a tone."""

from __future__ import annotations

import re
from pathlib import Path

import ffmpeg

from encoder.errors import EncoderError
from encoder.ffmpeg import run_ffmpeg
from encoder.progress import Progress


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{1,5})x(\d{1,5})", text)
    if not m or not (16 <= int(m.group(1)) <= 7680 and 16 <= int(m.group(2)) <= 4320):
        raise EncoderError(f"size {text!r} is not WIDTHxHEIGHT between 16x16 and 7680x4320")
    return int(m.group(1)), int(m.group(2))


def build_sample_args(
    out: str, duration_s: float, size: tuple[int, int], fps: float = 30, audio: bool = True
) -> list[str]:
    """ffmpeg args for a `duration_s` test pattern (testsrc2) with a 440 Hz tone."""
    video = ffmpeg.input(f"testsrc2=size={size[0]}x{size[1]}:rate={fps:g}", f="lavfi", t=duration_s)
    streams = [video]
    opts: dict[str, object] = {"c:v": "libx264", "preset": "veryfast", "crf": 18, "pix_fmt": "yuv420p"}
    if audio:
        tone = ffmpeg.input("sine=frequency=440:sample_rate=48000", f="lavfi", t=duration_s)
        streams.append(tone)
        opts.update({"c:a": "aac", "b:a": "128k"})
    return list(ffmpeg.output(*streams, out, movflags="+faststart", **opts).get_args())


def make_sample(
    out: Path, duration_s: float, size: tuple[int, int], fps: float = 30, audio: bool = True,
    progress: str = "auto",
) -> None:
    if not 0 < duration_s <= 3600:
        raise EncoderError(f"duration {duration_s:g} s is out of range (0 to 3600)")
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = Progress(f"sample {out.name}", duration_s, progress)
    try:
        run_ffmpeg(build_sample_args(str(out), duration_s, size, fps, audio),
                   what=f"making {out}", on_progress=bar.update)
    finally:
        bar.close()
