"""The encode plan (frozen) and the pure function that turns it into ffmpeg arguments.

One ffmpeg process decodes the source once, makes it constant-rate (`fps`), splits it
into every rung and scales each (FACTS: ~25% less CPU than one process per rung), and
writes CMAF fMP4 segments with the `dash` muxer. Keyframes are forced at every segment
boundary in every rung and scene-cut keyframes are off, so segments align across rungs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import ffmpeg

from encoder.encrypt import ClearKey, ffmpeg_options
from encoder.errors import LadderError
from encoder.ladder import Rendition
from encoder.tracks import STEREO_BITRATE_BPS, AudioRendition, SubtitleRendition

# Codec name -> (ffmpeg encoder, extra output options for every video stream).
CODECS: dict[str, tuple[str, dict[str, Any]]] = {
    "h264": ("libx264", {"preset": "veryfast", "profile:v": "high", "sc_threshold": 0}),
    # hvc1: parameter sets only in the sample entry, as Apple requires for HLS (and CMAF).
    "hevc": ("libx265", {"preset": "veryfast", "tag:v": "hvc1", "forced-idr": 1,
                         "x265-params": "log-level=error:scenecut=0:open-gop=0"}),
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": 8, "row-mt": 1}),
    "av1": ("libsvtav1", {"preset": 10, "svtav1-params": "scd=0"}),
}

# SVT-AV1 accepts a maximum bitrate only in CRF mode ("Max Bitrate only supported with
# CRF mode"): AV1 rungs are plain VBR at the target bitrate.
UNCAPPED = frozenset({"av1"})
HIGH_BIT_DEPTH = frozenset({"hevc", "vp9", "av1"})
"""Codecs whose ladder carries 10-bit (HEVC Main10, VP9 profile 2, AV1 Main)."""
PROFILE_10BIT = {"hevc": "main10", "vp9": "2"}

AUDIO_BITRATE_BPS = STEREO_BITRATE_BPS
AUDIO_SAMPLE_RATE = 48_000
AUDIO_CHANNELS = 2

# CICP code points (ITU-T H.273) -> the names ffmpeg's setparams takes.
PRIMARIES = {1: "bt709", 9: "bt2020", 12: "smpte432", 11: "smpte431"}
TRANSFERS = {1: "bt709", 16: "smpte2084", 18: "arib-std-b67", 14: "bt2020-10", 15: "bt2020-12"}
MATRICES = {1: "bt709", 9: "bt2020nc", 10: "bt2020c"}


@dataclass(frozen=True)
class VideoFormat:
    """What one codec's ladder is encoded as."""

    pix_fmt: str
    """yuv420p or yuv420p10le."""
    tonemap: bool
    """HDR (PQ/HLG) mapped to SDR BT.709 (for a codec that stays 8-bit)."""
    color: tuple[int, int, int]
    """CICP primaries, transfer, matrix written into the stream (2: unspecified)."""

    @property
    def bit_depth(self) -> int:
        return 10 if "10" in self.pix_fmt else 8

    @property
    def video_range(self) -> str:
        """HLS VIDEO-RANGE (RFC 8216bis §4.4.6.2): SDR, PQ or HLG."""
        return {16: "PQ", 18: "HLG"}.get(self.color[1], "SDR")


@dataclass(frozen=True)
class VideoOutput:
    """One encoded video stream: a rung of one codec's ladder."""

    id: str
    """Rendition id: the rung's (`720p`), `720p-hevc` in a multi-codec title."""
    rendition: Rendition
    codec: str
    format: VideoFormat


@dataclass(frozen=True)
class EncodePlan:
    """Everything one encode does, decided before ffmpeg starts."""

    source: str
    """Absolute path of the source file."""
    renditions: tuple[Rendition, ...]
    """Video renditions of one codec's ladder, lowest bitrate first."""
    codec: str
    """Video codec name: a key of CODECS (the first, in a multi-codec title)."""
    fps: Fraction
    """Constant output frame rate (full-rate rungs)."""
    segment_s: float
    """Target segment duration in seconds."""
    audio: bool
    """Whether to encode the source's audio (as `audio_renditions`, or one stereo AAC)."""
    duration_s: float
    """Source duration (for progress)."""
    codecs: tuple[str, ...] = ()
    """Every video codec of a multi-codec title, in order; empty: just `codec`."""
    audio_renditions: tuple[AudioRendition, ...] = ()
    """The audio renditions; empty with `audio`: one stereo AAC of the first stream."""
    subtitles: tuple[SubtitleRendition, ...] = ()
    """WebVTT renditions."""
    side_files: tuple[str, ...] = ()
    """Side-loaded subtitle files: ffmpeg inputs 1, 2, ... (SubtitleRendition.input)."""
    deinterlace: bool = False
    """Run bwdif (one frame per field) before `fps`: the source is interlaced."""
    bit_depth: int = 8
    """The source's bits per sample."""
    color: tuple[int, int, int] = (2, 2, 2)
    """The source's CICP primaries, transfer and matrix."""
    notes: tuple[str, ...] = field(default=())
    """What the encode changes or leaves out, said to the user and kept in title.json."""
    encryption: ClearKey | None = None
    """CENC-encrypt every video and audio sample with this key."""
    license_url: str | None = None
    """The licence server players ask for the key (written into the manifests)."""
    per_title: dict[str, Any] | None = None
    """`--ladder per-title`: the probes, the hull and why each rung was chosen."""

    @property
    def gop_frames(self) -> int:
        """Frames per segment: every segment starts with a keyframe."""
        return max(1, round(self.segment_s * float(self.fps)))

    @property
    def video_codecs(self) -> tuple[str, ...]:
        return self.codecs or (self.codec,)

    def video_format(self, codec: str) -> VideoFormat:
        """10-bit with the source's colour for codecs that carry it; else 8-bit SDR
        (tone-mapped from PQ/HLG)."""
        hdr = self.color[1] in (16, 18)
        if self.bit_depth > 8 and codec in HIGH_BIT_DEPTH:
            return VideoFormat("yuv420p10le", False, self.color)
        if hdr:
            return VideoFormat("yuv420p", True, (1, 1, 1))
        return VideoFormat("yuv420p", False, self.color)

    def video_outputs(self) -> list[VideoOutput]:
        """Every video stream in ffmpeg's output order: codec by codec, each its ladder."""
        many = len(self.video_codecs) > 1
        return [VideoOutput(f"{r.id}-{c}" if many else r.id, r, c, self.video_format(c))
                for c in self.video_codecs for r in self.renditions]

    def audio_outputs(self) -> tuple[AudioRendition, ...]:
        if not self.audio:
            return ()
        return self.audio_renditions or (AudioRendition("audio", 0, AUDIO_CHANNELS, AUDIO_BITRATE_BPS),)


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


def parse_codecs(spec: str, available: frozenset[str] | None = None) -> tuple[str, ...]:
    """`h264` or `h264,hevc,av1`: each checked, no repeats."""
    codecs = tuple(c.strip() for c in spec.split(",") if c.strip())
    if not codecs:
        raise LadderError(f"no codec in {spec!r}; choose from {', '.join(CODECS)}")
    for c in codecs:
        check_codec(c, available)
    if len(set(codecs)) != len(codecs):
        raise LadderError(f"codec list {spec!r} names a codec twice")
    return codecs


def _tonemap(stream: Any) -> Any:
    """PQ/HLG -> SDR BT.709 (zimg's linearisation, Hable's curve), the usual ffmpeg chain."""
    return (stream.filter("zscale", t="linear", npl=100).filter("format", "gbrpf32le")
            .filter("zscale", p="bt709").filter("tonemap", "hable", desat=0)
            .filter("zscale", t="bt709", m="bt709", r="tv"))


def _per_stream(opts: dict[str, Any], key: str, index: int, value: Any) -> None:
    """`key` for output video stream `index` (`preset` -> `preset:v:3`, `tag:v` -> `tag:v:3`)."""
    opts[f"{key.removesuffix(':v')}:v:{index}"] = value


@dataclass(frozen=True)
class Window:
    """One chunk of a chunked encode: output frames `first_frame` to `end_frame` (exclusive)."""

    seek_s: float
    """Input seek (`-ss`, with `-copyts`): a little before the chunk, so the `fps` filter
    sees the frames it picks from."""
    read_s: float | None
    """Seconds of input read from `seek_s` (`-t`); None: to the end."""
    first_frame: int
    """The chunk's first frame on the `fps` filter's output (its pts at 1/fps)."""
    end_frame: int | None
    """One past the chunk's last frame; None: to the end of the source."""
    key_times: tuple[float, ...]
    """Forced keyframe times relative to the chunk's start (half a frame early, so that
    exactly the one-process encode's keyframes are forced)."""
    threads: int = 1
    """Decoder, filter and encoder threads (a chunk task uses one core)."""


def build_args(plan: EncodePlan, manifest_path: str, subtitle_paths: tuple[str, ...] = (),
               window: Window | None = None) -> list[str]:
    """The ffmpeg arguments (without the binary) that encode `plan` into `manifest_path`.

    Output stream i (video codec by codec, then audio) is written to `r<i>/init.mp4` and
    `r<i>/seg-NNNNN.m4s` next to the manifest; those folders must exist. Subtitle
    rendition k is written as one WebVTT file to `subtitle_paths[k]` by the same process
    (the source is read once). A plan without renditions encodes audio (and subtitles)
    only. With `window`, only that chunk of the video is encoded (encoder/chunks.py).
    """
    for c in plan.video_codecs:
        check_codec(c)
    if len(subtitle_paths) != len(plan.subtitles):
        raise ValueError("one output path per subtitle rendition")
    if window is not None:
        reading: dict[str, Any] = {} if window.read_s is None else {"t": f"{window.read_s:.6f}"}
        src = ffmpeg.input(plan.source, ss=f"{window.seek_s:.6f}", threads=window.threads, **reading)
    else:
        src = ffmpeg.input(plan.source)
    sides = [ffmpeg.input(f) for f in plan.side_files]
    outputs = plan.video_outputs()
    video = src["v:0"]
    if plan.deinterlace:
        video = video.filter("bwdif", mode="send_field", parity="auto", deint="all")
    video = video.filter("fps", fps=str(plan.fps))
    if window is not None:  # pts are frame numbers here: trim by them, exactly
        ends = {} if window.end_frame is None else {"end_pts": window.end_frame}
        video = video.trim(start_pts=window.first_frame, **ends).setpts("PTS-STARTPTS")
    formats = list(dict.fromkeys(o.format for o in outputs))
    heads = [video] if outputs else []
    if len(formats) > 1:
        fork = video.filter_multi_output("split", len(formats))
        heads = [fork[k] for k in range(len(formats))]
    branches = dict(zip(formats, heads, strict=True))
    streams: list[Any] = [None] * len(outputs)
    for fmt, node in branches.items():
        if fmt.tonemap:
            node = _tonemap(node)
        elif fmt.bit_depth > 8 and fmt.color != (2, 2, 2):
            names = {"color_primaries": PRIMARIES.get(fmt.color[0]),
                     "color_trc": TRANSFERS.get(fmt.color[1]), "colorspace": MATRICES.get(fmt.color[2])}
            node = node.filter("setparams", **{k: v for k, v in names.items() if v})
        mine = [i for i, o in enumerate(outputs) if o.format == fmt]
        split = node.filter_multi_output("split", len(mine))
        for j, i in enumerate(mine):
            r = outputs[i].rendition
            rung = split[j]
            if r.fps_divisor > 1:
                rung = rung.filter("fps", fps=str(plan.fps / r.fps_divisor))
            streams[i] = rung.filter("scale", r.width, r.height)
    audio = plan.audio_outputs()
    for a in audio:
        streams.append(src[f"a:{a.source_index}"])
    gop = plan.gop_frames
    opts: dict[str, Any] = {}
    if outputs:
        opts["force_key_frames"] = (f"expr:gte(t,n_forced*{plan.segment_s:g})" if window is None
                                    else ",".join(f"{t:.6f}" for t in window.key_times))
    if window is not None:
        opts["threads"] = window.threads
    one_codec = len(plan.video_codecs) == 1
    if one_codec and outputs:
        encoder, codec_opts = CODECS[plan.codec]
        opts.update({"c:v": encoder, **codec_opts})
    if len(formats) == 1:
        opts["pix_fmt"] = formats[0].pix_fmt
    half = any(o.rendition.fps_divisor > 1 for o in outputs)
    if not half and outputs:
        opts.update({"g": gop, "keyint_min": gop})
    for i, o in enumerate(outputs):
        r = o.rendition
        if not one_codec:
            encoder, codec_opts = CODECS[o.codec]
            _per_stream(opts, "c", i, encoder)
            for key, value in codec_opts.items():
                _per_stream(opts, key, i, value)
        if len(formats) > 1:
            _per_stream(opts, "pix_fmt", i, o.format.pix_fmt)
        if o.format.bit_depth > 8 and o.codec in PROFILE_10BIT:
            _per_stream(opts, "profile", i, PROFILE_10BIT[o.codec])
        if half:
            _per_stream(opts, "g", i, max(1, gop // r.fps_divisor))
            _per_stream(opts, "keyint_min", i, max(1, gop // r.fps_divisor))
        opts[f"b:v:{i}"] = str(r.bitrate_bps)
        if o.codec not in UNCAPPED:
            opts[f"maxrate:v:{i}"] = str(r.maxrate_bps)
            opts[f"bufsize:v:{i}"] = str(r.bufsize_bits)
    if audio:
        opts.update({"c:a": "aac", "ar": AUDIO_SAMPLE_RATE})
        if len(audio) == 1:
            opts.update({"b:a": str(audio[0].bitrate_bps), "ac": audio[0].channels})
        else:
            for j, a in enumerate(audio):
                opts[f"b:a:{j}"] = str(a.bitrate_bps)
                opts[f"ac:a:{j}"] = a.channels
    opts.update(
        {
            "f": "dash",
            "seg_duration": f"{plan.segment_s:g}",
            "use_template": 1,
            "use_timeline": 1,
            "init_seg_name": "r$RepresentationID$/init.mp4",
            "media_seg_name": "r$RepresentationID$/seg-$Number%05d$.m4s",
            "adaptation_sets": adaptation_sets(plan),
            # The dash muxer writes WebM for VP9 (and AV1 in older builds) unless told;
            # every codec must be CMAF fMP4 (ISO/IEC 23000-19) for HLS and the origin.
            "dash_segment_type": "mp4",
            "format_options": "movflags=+cmaf" + (
                f":{ffmpeg_options(plan.encryption)}" if plan.encryption else ""),
        }
    )
    outs = [ffmpeg.output(*streams, manifest_path, **opts)]
    for sub, path in zip(plan.subtitles, subtitle_paths, strict=True):
        sin = src if sub.input == 0 else sides[sub.input - 1]
        outs.append(ffmpeg.output(sin[f"s:{sub.stream}"], path, **{"c:s": "webvtt", "f": "webvtt"}))
    args = list((outs[0] if len(outs) == 1 else ffmpeg.merge_outputs(*outs)).get_args())
    if window is not None:  # keep the source's timestamps, so the trim sees frame numbers
        args = ["-copyts", "-start_at_zero", "-filter_complex_threads", str(window.threads), *args]
    inputs = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
    if inputs != [plan.source, *plan.side_files]:  # the input numbers the maps rely on
        raise ValueError(f"ffmpeg inputs out of order: {inputs}")
    return args


def adaptation_sets(plan: EncodePlan) -> str:
    """The dash muxer's sets: one per video codec, one per audio rendition (language, layout)."""
    outputs = plan.video_outputs()
    audio = plan.audio_outputs()
    if not outputs:
        return " ".join(f"id={j},streams={j}" for j in range(len(audio)))
    if len(plan.video_codecs) == 1 and len(audio) <= 1:
        return "id=0,streams=v" + (" id=1,streams=a" if audio else "")
    sets = []
    for k, c in enumerate(plan.video_codecs):
        ids = ",".join(str(i) for i, o in enumerate(outputs) if o.codec == c)
        sets.append(f"id={k},streams={ids}")
    for j in range(len(audio)):
        sets.append(f"id={len(sets)},streams={len(outputs) + j}")
    return " ".join(sets)
