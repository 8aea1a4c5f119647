"""Bitrate ladders: the default one, ladder files, and fitting a ladder to a source.

A rung's `height` is the size of the picture's short side ("720p"), so that portrait
sources get the same ladder turned on its side. Rungs are never upscaled: a rung taller
than the source is dropped, and a source smaller than every rung gets one rung at its own
size. Widths keep the source's display aspect ratio, rounded to even numbers (4:2:0).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoder.errors import LadderError


@dataclass(frozen=True)
class Rung:
    """One rung of a ladder as the user asks for it (before fitting to a source)."""

    height: int
    """Short side of the picture in pixels (the "p" in 720p)."""
    bitrate_bps: int
    """Target average video bitrate."""
    maxrate_bps: int | None = None
    """Cap of the capped-VBR rate control; default 1.1x the target."""
    name: str | None = None
    """Rendition id; default "<height>p"."""
    frame_rate: str | None = None
    """"full" or "half" the title's rate; default: half at or below HALF_RATE_MAX_HEIGHT
    when the source runs at more than HALF_RATE_MIN_FPS, else full."""


@dataclass(frozen=True)
class Rendition:
    """A rung fitted to a source: exact size and rate control."""

    id: str
    """Rendition id, also its folder name ("720p")."""
    width: int
    """Output width in pixels (even)."""
    height: int
    """Output height in pixels (even)."""
    bitrate_bps: int
    """Target average bitrate."""
    maxrate_bps: int
    """Peak rate allowed by the VBV (capped VBR)."""
    bufsize_bits: int
    """VBV buffer size."""
    fps_divisor: int = 1
    """1: the title's frame rate; 2: half of it (low rungs of 50/60 fps sources)."""


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(1080, 5_000_000),
    Rung(720, 2_800_000),
    Rung(480, 1_200_000),
    Rung(360, 600_000),
    Rung(240, 300_000),
)

MAXRATE_FACTOR = 1.1
"""Capped VBR: peaks at most 10% above target, so players' bandwidth estimates hold."""
BUFSIZE_SECONDS = 2.0
"""VBV buffer of two seconds at the target rate (Apple's HLS authoring spec: ≤ 2x)."""

HALF_RATE_MAX_HEIGHT = 480
"""Rungs this tall or shorter of a 50/60 fps source run at half rate (25/30 fps), as
streaming services' ladders do: at these sizes the bits buy more as sharper frames."""
HALF_RATE_MIN_FPS = 47.0
"""Sources faster than this (48, 50, 59.94, 60 fps) count as high frame rate."""

MAX_RUNGS = 12
"""At most this many rungs: every rung is one more encoder in the one ffmpeg process."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def load_ladder(spec: str) -> tuple[Rung, ...]:
    """`default`, or a JSON file: a list of rungs or {"rungs": [...]}.

    A rung is {"height": 720, "bitrate_kbps": 2800, "maxrate_kbps"?: 3080, "name"?: "720p"}
    (`bitrate_bps` / `maxrate_bps` are accepted too).
    """
    if spec == "default":
        return DEFAULT_LADDER
    path = Path(spec)
    if not path.is_file():
        raise LadderError(f"ladder file {spec} does not exist (use 'default' or a JSON file)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LadderError(f"ladder file {spec} is not valid JSON ({exc})") from exc
    return parse_ladder(data, source=spec)


def parse_ladder(data: Any, *, source: str = "ladder") -> tuple[Rung, ...]:
    """Validate a decoded ladder document; unknown keys are rejected."""
    if isinstance(data, dict):
        unknown = set(data) - {"rungs"}
        if unknown:
            raise LadderError(f"{source}: unknown key(s) {sorted(unknown)}; expected 'rungs'")
        data = data.get("rungs")
    if not isinstance(data, list) or not data:
        raise LadderError(f"{source}: expected a non-empty list of rungs")
    if len(data) > MAX_RUNGS:
        raise LadderError(f"{source}: {len(data)} rungs is too many (at most {MAX_RUNGS})")
    rungs = []
    for i, item in enumerate(data):
        where = f"{source}: rung {i + 1}"
        if not isinstance(item, dict):
            raise LadderError(f"{where} is not an object")
        allowed = {"height", "bitrate_kbps", "bitrate_bps", "maxrate_kbps", "maxrate_bps", "name",
                   "frame_rate"}
        unknown = set(item) - allowed
        if unknown:
            raise LadderError(f"{where} has unknown key(s) {sorted(unknown)}")
        height = item.get("height")
        if not isinstance(height, int) or isinstance(height, bool) or not 32 <= height <= 4320:
            raise LadderError(f"{where} needs an integer 'height' between 32 and 4320")
        bitrate = _rate(item, "bitrate", where, required=True)
        maxrate = _rate(item, "maxrate", where, required=False)
        assert bitrate is not None
        if maxrate is not None and maxrate < bitrate:
            raise LadderError(f"{where}: maxrate is below the bitrate")
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
            raise LadderError(f"{where}: 'name' must be letters, digits, '-' or '_'")
        if name is not None and name.startswith(("audio", "sub-")):
            raise LadderError(f"{where}: names starting 'audio' or 'sub-' are reserved for "
                              "audio and subtitle renditions")
        rate = item.get("frame_rate")
        if rate is not None and rate not in ("full", "half"):
            raise LadderError(f"{where}: 'frame_rate' must be \"full\" or \"half\"")
        rungs.append(Rung(height, bitrate, maxrate, name, rate))
    return tuple(rungs)


def _rate(item: dict[str, Any], key: str, where: str, *, required: bool) -> int | None:
    kbps, bps = item.get(f"{key}_kbps"), item.get(f"{key}_bps")
    if kbps is not None and bps is not None:
        raise LadderError(f"{where}: give {key}_kbps or {key}_bps, not both")
    value = kbps * 1000 if kbps is not None else bps
    if value is None:
        if required:
            raise LadderError(f"{where} needs 'bitrate_kbps'")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 16_000 <= value <= 200_000_000:
        raise LadderError(f"{where}: {key} must be a number between 16 and 200000 kbps")
    return int(value)


def fit_ladder(rungs: tuple[Rung, ...], width: int, height: int,
               fps: float = 30.0) -> tuple[Rendition, ...]:
    """Fit `rungs` to a source of `width`x`height` (display pixels) at `fps` (the output
    rate); lowest bitrate first."""
    short = min(width, height)
    landscape = width >= height
    chosen = [r for r in rungs if r.height <= short]
    if not chosen:
        # Smaller than every rung: one rendition at the source's own size.
        lowest = min(rungs, key=lambda r: r.bitrate_bps)
        chosen = [Rung(short, lowest.bitrate_bps, lowest.maxrate_bps, lowest.name, lowest.frame_rate)]
    out: list[Rendition] = []
    seen: set[str] = set()
    for r in sorted(chosen, key=lambda r: (r.bitrate_bps, r.height)):
        short_px = _even(r.height)
        long_px = _even(r.height * max(width, height) / short)
        w, h = (long_px, short_px) if landscape else (short_px, long_px)
        rid = r.name or f"{r.height}p"
        if rid in seen:
            rid = f"{rid}-{r.bitrate_bps // 1000}k"
        if rid in seen:
            raise LadderError(f"two rungs share the name {rid}")
        seen.add(rid)
        maxrate = r.maxrate_bps or int(r.bitrate_bps * MAXRATE_FACTOR)
        half = r.frame_rate == "half" or (
            r.frame_rate is None and fps > HALF_RATE_MIN_FPS and r.height <= HALF_RATE_MAX_HEIGHT)
        out.append(Rendition(rid, w, h, r.bitrate_bps, maxrate, int(maxrate * BUFSIZE_SECONDS),
                             2 if half else 1))
    return tuple(out)


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)
