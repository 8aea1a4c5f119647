"""Videos as the player sees them: a bitrate ladder and every segment's size per level.

Inputs read here:

* a Pensieve segment-size folder (``video_size_0`` .. ``video_size_N``, one size in bytes per
  line, level 0 the lowest; hongzimao/pensieve ``test/fixed_env.py``);
* a sabre movie JSON (``segment_duration_ms``, ``bitrates_kbps``, ``segment_sizes_bits``);
* an abrstack title (``media/NAME`` folder with ``title.json``), or an HLS / DASH URL whose
  segment sizes are read from the server (see :mod:`player_sim.remote`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from player_sim.errors import PlayerError

# Pensieve's EnvivioDash3 ladder (Mao et al. 2017), the bitrates of video_size_0..5.
ENVIVIO_BITRATES_KBPS = (300, 750, 1200, 1850, 2850, 4300)


@dataclass(frozen=True)
class Video:
    """A bitrate ladder and its segment sizes."""

    name: str
    """Label used in reports."""
    bitrates_bps: tuple[int, ...]
    """Nominal bitrate of each level, ascending (level 0 is the lowest)."""
    segment_s: float
    """Duration of every segment, seconds."""
    sizes_bytes: tuple[tuple[int, ...], ...]
    """``sizes_bytes[level][segment]``: the size of each segment at each level."""
    vmaf: tuple[tuple[float, ...], ...] | None = None
    """``vmaf[level][segment]``: per-segment VMAF (a title encoded with --quality), else None."""

    @property
    def levels(self) -> int:
        """Number of levels in the ladder."""
        return len(self.bitrates_bps)

    @property
    def segments(self) -> int:
        """Number of segments."""
        return len(self.sizes_bytes[0])

    def size_bytes(self, level: int, segment: int) -> int:
        """Size of one segment at one level."""
        return self.sizes_bytes[level][segment]


def make_video(name: str, bitrates_bps: list[int], segment_s: float, sizes: list[list[int]]) -> Video:
    """Validate and build a :class:`Video` (one sentence on any inconsistency)."""
    if not bitrates_bps:
        raise PlayerError(f"video {name} has no levels")
    if len(sizes) != len(bitrates_bps):
        raise PlayerError(f"video {name} has {len(bitrates_bps)} bitrates but segment sizes for {len(sizes)} levels")
    counts = {len(s) for s in sizes}
    if len(counts) != 1:
        raise PlayerError(f"video {name} has levels with different segment counts ({sorted(counts)}): the ladder is mismatched")
    if counts == {0}:
        raise PlayerError(f"video {name} has no segments")
    if list(bitrates_bps) != sorted(bitrates_bps) or len(set(bitrates_bps)) != len(bitrates_bps):
        raise PlayerError(f"video {name} has bitrates that are not strictly ascending: {bitrates_bps}")
    if any(b <= 0 for b in bitrates_bps):
        raise PlayerError(f"video {name} has a non-positive bitrate")
    if segment_s <= 0:
        raise PlayerError(f"video {name} has a non-positive segment duration")
    if any(v <= 0 for level in sizes for v in level):
        raise PlayerError(f"video {name} has a segment of size zero or less")
    return Video(name, tuple(int(b) for b in bitrates_bps), float(segment_s), tuple(tuple(int(v) for v in s) for s in sizes))


def parse_pensieve_sizes(name: str, texts: list[str], bitrates_kbps: list[int] | None = None, segment_s: float = 4.0) -> Video:
    """Build a video from the texts of Pensieve ``video_size_<level>`` files (level order)."""
    sizes: list[list[int]] = []
    for level, text in enumerate(texts):
        level_sizes = []
        for lineno, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                level_sizes.append(int(fields[0]))
            except ValueError:
                raise PlayerError(f"video {name}: video_size_{level} line {lineno} is not a size in bytes") from None
        sizes.append(level_sizes)
    if bitrates_kbps is None:
        if len(texts) != len(ENVIVIO_BITRATES_KBPS):
            raise PlayerError(
                f"video {name} has {len(texts)} levels; give a bitrates.json (a list of kbps) for other than the 6-level Envivio ladder"
            )
        bitrates_kbps = list(ENVIVIO_BITRATES_KBPS)
    return make_video(name, [int(k * 1000) for k in bitrates_kbps], segment_s, sizes)


def parse_sabre_movie(name: str, text: str) -> Video:
    """Build a video from a sabre movie JSON."""
    try:
        data = json.loads(text)
        seg_s = float(data["segment_duration_ms"]) / 1000
        bitrates = [int(float(k) * 1000) for k in data["bitrates_kbps"]]
        rows = data["segment_sizes_bits"]
        sizes = [[int(row[level]) // 8 for row in rows] for level in range(len(bitrates))]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise PlayerError(f"video {name} is not a sabre movie JSON (segment_duration_ms, bitrates_kbps, segment_sizes_bits)") from None
    return make_video(name, bitrates, seg_s, sizes)


def parse_title(name: str, data: Any) -> Video:
    """Build a video from an abrstack ``title.json`` (video renditions, sizes from their segments)."""
    try:
        renditions = [r for r in data["renditions"] if r.get("kind", "video") == "video"]
        renditions.sort(key=lambda r: int(r.get("average_bitrate_bps") or r["target_bitrate_bps"]))
        bitrates = [int(r.get("average_bitrate_bps") or r["target_bitrate_bps"]) for r in renditions]
        sizes = [[int(s["size_bytes"]) for s in r["segments"]] for r in renditions]
        seg_s = float(data["segment_s"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise PlayerError(f"title {name}: title.json lacks renditions with bitrates and segment sizes") from None
    # The last segment is usually shorter; it is still one decision for the player.
    video = make_video(name, bitrates, seg_s, sizes)
    scores = [[s.get("quality", {}).get("vmaf") for s in r["segments"]] for r in renditions]
    if all(v is not None for row in scores for v in row):
        video = replace(video, vmaf=tuple(tuple(float(v) for v in row) for row in scores))
    return video


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlayerError(f"video file {path} cannot be read: {exc}") from None


def load_video(spec: str, media_dir: Path = Path("media")) -> Video:
    """Load a video named by ``spec``: a title name or folder, a size folder, a sabre JSON or a URL."""
    if re.match(r"^https?://", spec):
        from player_sim.remote import fetch_video

        return fetch_video(spec)
    path = Path(spec)
    if not path.exists() and (media_dir / spec / "title.json").is_file():
        path = media_dir / spec
    if path.is_dir():
        if (path / "title.json").is_file():
            try:
                data = json.loads(_read(path / "title.json"))
            except ValueError:
                raise PlayerError(f"title {path}: title.json is not valid JSON") from None
            return parse_title(path.name, data)
        size_files = {int(m.group(1)): p for p in path.iterdir() if (m := re.fullmatch(r"video_size_(\d+)", p.name))}
        if not size_files:
            raise PlayerError(f"video folder {path} has neither title.json nor video_size_N files")
        if sorted(size_files) != list(range(len(size_files))):
            raise PlayerError(f"video folder {path} has video_size files with gaps in the level numbers: {sorted(size_files)}")
        bitrates = None
        if (path / "bitrates.json").is_file():
            try:
                bitrates = [int(k) for k in json.loads(_read(path / "bitrates.json"))]
            except (ValueError, TypeError):
                raise PlayerError(f"video folder {path}: bitrates.json is not a list of kbps") from None
        return parse_pensieve_sizes(path.name, [_read(size_files[i]) for i in range(len(size_files))], bitrates)
    if path.is_file():
        return parse_sabre_movie(path.stem, _read(path))
    raise PlayerError(f"video {spec} is neither a title in {media_dir}/, a folder, a file nor a URL")
