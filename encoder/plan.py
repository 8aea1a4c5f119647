"""The encode plan (frozen) and the pure function that turns it into ffmpeg arguments.

One ffmpeg process decodes the source once, makes it constant-rate (`fps`), splits it
into every rung and scales each (FACTS: ~25% less CPU than one process per rung), and
writes CMAF fMP4 segments with the `dash` muxer. Keyframes are forced at every segment
boundary in every rung and scene-cut keyframes are off, so segments align across rungs.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import ffmpeg

from encoder.errors import LadderError
from encoder.ladder import Rendition

# Codec name -> (ffmpeg encoder, extra output options for every video stream).
CODECS: dict[str, tuple[str, dict[str, Any]]] = {
    "h264": ("libx264", {"preset": "veryfast", "profile:v": "high", "sc_threshold": 0}),
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": 8, "row-mt": 1}),
    "av1": ("libsvtav1", {"preset": 10, "svtav1-params": "scd=0"}),
}

# SVT-AV1 accepts a maximum bitrate only in CRF mode ("Max Bitrate only supported with
# CRF mode"): AV1 rungs are plain VBR at the target bitrate.
UNCAPPED = frozenset({"av1"})

AUDIO_BITRATE_BPS = 128_000
AUDIO_SAMPLE_RATE = 48_000
AUDIO_CHANNELS = 2


@dataclass(frozen=True)
class EncodePlan:
    """Everything one encode does, decided before ffmpeg starts."""

    source: str
    """Absolute path of the source file."""
    renditions: tuple[Rendition, ...]
    """Video renditions, lowest bitrate first."""
    codec: str
    """Video codec name: a key of CODECS."""
    fps: Fraction
    """Constant output frame rate."""
    segment_s: float
    """Target segment duration in seconds."""
    audio: bool
    """Whether to encode the source's audio as an AAC rendition."""
    duration_s: float
    """Source duration (for progress)."""

    @property
    def gop_frames(self) -> int:
        """Frames per segment: every segment starts with a keyframe."""
        return max(1, round(self.segment_s * float(self.fps)))


def output_fps(source_fps: float) -> Fraction:
    """The constant output rate: the source's, as an exact fraction (29.97 -> 30000/1001)."""
    for base in (24, 30, 48, 60):  # NTSC rates are k*1000/1001
        if abs(source_fps - base * 1000 / 1001) < 0.005:
            return Fraction(base * 1000, 1001)
    fps = Fraction(round(source_fps * 1000), 1000).limit_denominator(1000)
    if fps > 60:
        fps = Fraction(60)
    return fps


def check_codec(codec: str, available: frozenset[str] | None = None) -> None:
    """Raise LadderError for a codec we do not know or ffmpeg was built without."""
    if codec not in CODECS:
        raise LadderError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if available is not None and CODECS[codec][0] not in available:
        raise LadderError(f"this ffmpeg has no {CODECS[codec][0]} encoder for codec {codec!r}")


def build_args(plan: EncodePlan, manifest_path: str) -> list[str]:
    """The ffmpeg arguments (without the binary) that encode `plan` into `manifest_path`.

    Rendition i is written to `r<i>/init.mp4` and `r<i>/seg-NNNNN.m4s` next to the
    manifest (the audio rendition is the last index); those folders must exist.
    """
    check_codec(plan.codec)
    encoder, codec_opts = CODECS[plan.codec]
    src = ffmpeg.input(plan.source)
    video = src["v:0"].filter("fps", fps=str(plan.fps))
    n = len(plan.renditions)
    split = video.filter_multi_output("split", n)
    streams: list[Any] = [split[i].filter("scale", r.width, r.height) for i, r in enumerate(plan.renditions)]
    if plan.audio:
        streams.append(src["a:0"])
    gop = plan.gop_frames
    opts: dict[str, Any] = {
        "c:v": encoder,
        "pix_fmt": "yuv420p",
        "g": gop,
        "keyint_min": gop,
        "force_key_frames": f"expr:gte(t,n_forced*{plan.segment_s:g})",
        **codec_opts,
    }
    for i, r in enumerate(plan.renditions):
        opts[f"b:v:{i}"] = str(r.bitrate_bps)
        if plan.codec not in UNCAPPED:
            opts[f"maxrate:v:{i}"] = str(r.maxrate_bps)
            opts[f"bufsize:v:{i}"] = str(r.bufsize_bits)
    if plan.audio:
        opts.update(
            {"c:a": "aac", "b:a": str(AUDIO_BITRATE_BPS), "ac": AUDIO_CHANNELS, "ar": AUDIO_SAMPLE_RATE}
        )
    sets = "id=0,streams=v" + (" id=1,streams=a" if plan.audio else "")
    opts.update(
        {
            "f": "dash",
            "seg_duration": f"{plan.segment_s:g}",
            "use_template": 1,
            "use_timeline": 1,
            "init_seg_name": "r$RepresentationID$/init.mp4",
            "media_seg_name": "r$RepresentationID$/seg-$Number%05d$.m4s",
            "adaptation_sets": sets,
            # The dash muxer writes WebM for VP9 (and AV1 in older builds) unless told;
            # every codec must be CMAF fMP4 (ISO/IEC 23000-19) for HLS and the origin.
            "dash_segment_type": "mp4",
            "format_options": "movflags=+cmaf",
        }
    )
    out = ffmpeg.output(*streams, manifest_path, **opts)
    return list(out.get_args())
