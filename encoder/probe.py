"""Probing a source with PyAV (the imageio-ffmpeg binary has no ffprobe)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from encoder.errors import SourceError

TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


@dataclass(frozen=True)
class SourceInfo:
    """What the encoder needs to know about a source file."""

    path: str
    """Absolute path of the source."""
    width: int
    """Display width in pixels (after sample aspect ratio)."""
    height: int
    """Height in pixels."""
    fps: float
    """Average frame rate (frames per second)."""
    duration_s: float
    """Duration of the container in seconds."""
    video_codec: str
    """Decoder name of the video stream (h264, vp9, ...)."""
    has_audio: bool
    """Whether the source has an audio stream (encoded as the AAC rendition)."""
    variable_frame_rate: bool
    """Whether frame timing looked variable; output is always constant-rate."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["file"] = os.path.basename(self.path)
        del d["path"]
        return d


def probe(path: str | os.PathLike[str]) -> SourceInfo:
    """Open `path` with PyAV, decode its first video frame, and describe it.

    Raises SourceError with one sentence for every way a source can be unusable.
    """
    p = Path(path)
    if not p.exists():
        raise SourceError(f"source {p} does not exist")
    if p.is_dir():
        raise SourceError(f"source {p} is a folder, not a video file")
    if p.stat().st_size == 0:
        raise SourceError(f"source {p} is an empty file")
    import av

    try:
        container = av.open(str(p))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise SourceError(
            f"source {p} is not a readable video file or is truncated ({_reason(exc)})"
        ) from exc
    with container:
        if not container.streams.video:
            kind = "an audio-only file" if container.streams.audio else "not a video file"
            raise SourceError(f"source {p} has no video stream ({kind})")
        stream = container.streams.video[0]
        if stream.codec_context.name in TEXT_CODECS:
            # ffmpeg renders any text file as "video" through its tty demuxer.
            raise SourceError(f"source {p} is a text file, not a video file")
        has_audio = bool(container.streams.audio)
        try:
            frame = next(container.decode(stream))
        except (av.FFmpegError, StopIteration, ValueError) as exc:
            raise SourceError(
                f"source {p} is truncated or corrupt: no video frame could be decoded"
            ) from exc
        width, height = frame.width, frame.height
        sar = stream.sample_aspect_ratio
        if sar and sar > 0 and sar != 1:
            width = int(round(width * Fraction(sar)))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        base = stream.base_rate or stream.guessed_rate
        vfr = bool(rate and base and abs(float(base) - float(rate)) > 0.01 * float(rate))
        duration_s = _duration_s(container, stream)
        codec = stream.codec_context.name
        if duration_s > 0 and not _reaches_end(container, stream, duration_s):
            raise SourceError(
                f"source {p} is truncated: it claims {duration_s:.1f} s but its data ends early"
            )
    if width < 16 or height < 16:
        raise SourceError(f"source {p} is too small to encode ({width}x{height})")
    if fps <= 0 or fps > 240:
        raise SourceError(f"source {p} has no usable frame rate ({fps:g} fps)")
    if duration_s <= 0:
        raise SourceError(f"source {p} has no duration (a still image or a broken file)")
    return SourceInfo(
        path=str(p.resolve()),
        width=width,
        height=height,
        fps=round(fps, 3),
        duration_s=round(duration_s, 3),
        video_codec=codec,
        has_audio=has_audio,
        variable_frame_rate=vfr,
    )


def _duration_s(container: Any, stream: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _reaches_end(container: Any, stream: Any, duration_s: float) -> bool:
    """Whether the video stream's packets really reach the end that the header claims.

    Demuxes (no decoding) from the keyframe before the last second: a file cut short
    (a partial download or copy) has an index pointing past its end and stops early.
    """
    import av

    tb = stream.time_base
    if not tb:
        return True
    start = stream.start_time or 0
    try:
        container.seek(start + int(max(duration_s - 1.0, 0) / tb), stream=stream, backward=True)
        last = None
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                last = packet.pts if last is None else max(last, packet.pts)
    except (av.FFmpegError, OSError):
        return False
    if last is None:
        return False
    end_s = float((last - start) * tb)
    return duration_s - end_s <= max(1.0, 0.05 * duration_s)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    # PyAV messages look like "[Errno 1094995529] Invalid data found when processing input: 'x'"
    if "]" in text:
        text = text.split("]", 1)[1]
    return text.split(":")[0].strip() or type(exc).__name__
