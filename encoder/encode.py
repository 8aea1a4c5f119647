"""`abr encode`: probe -> plan -> one ffmpeg run -> package -> verify -> publish."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoder.errors import EncoderError, LadderError, PublishError
from encoder.ffmpeg import ffmpeg_encoders, ffmpeg_exe, ffmpeg_filters, run_ffmpeg
from encoder.ladder import fit_ladder, load_ladder
from encoder.package import package
from encoder.plan import EncodePlan, build_args, check_codec, output_fps
from encoder.probe import probe
from encoder.progress import Progress
from encoder.publish import check_title_name, discard, publish, staging_dir
from encoder.verify import verify_title

MIN_SEGMENT_S = 1.0
MAX_SEGMENT_S = 30.0


@dataclass(frozen=True)
class EncodeConfig:
    """One `abr encode` invocation."""

    source: Path
    """The local video to encode."""
    title: str
    """The title's name: its folder under `media_dir`."""
    media_dir: Path = Path("media")
    """Where titles are published."""
    ladder: str = "default"
    """`default` or a ladder JSON file."""
    segment_s: float = 4.0
    """Target segment duration in seconds."""
    codec: str = "h264"
    """Video codec: h264, vp9 or av1."""
    quality: bool = False
    """Measure VMAF, PSNR and SSIM of every rung."""
    force: bool = False
    """Replace an existing title of the same name."""
    progress: str = "auto"
    """Progress display: auto, bar, plain, json or none."""
    job_id: str | None = None
    """The job service's id for this encode, recorded in title.json as `job_id`."""


def make_plan(config: EncodeConfig) -> tuple[EncodePlan, Any]:
    """Check every option and the source, and decide the encode (no files written)."""
    check_title_name(config.title)
    if not MIN_SEGMENT_S <= config.segment_s <= MAX_SEGMENT_S:
        raise LadderError(
            f"--segment-s {config.segment_s:g} is out of range ({MIN_SEGMENT_S:g} to {MAX_SEGMENT_S:g} s)"
        )
    check_codec(config.codec)
    check_codec(config.codec, ffmpeg_encoders())
    if config.quality and "libvmaf" not in ffmpeg_filters():
        raise EncoderError(f"--quality needs an ffmpeg with libvmaf; {ffmpeg_exe()} has none "
                           "(the imageio-ffmpeg build has it: set ABR_FFMPEG to it)")
    rungs = load_ladder(config.ladder)
    info = probe(config.source)
    renditions = fit_ladder(rungs, info.width, info.height)
    plan = EncodePlan(
        source=info.path,
        renditions=renditions,
        codec=config.codec,
        fps=output_fps(info.fps),
        segment_s=config.segment_s,
        audio=info.has_audio,
        duration_s=info.duration_s,
    )
    return plan, info


def encode(config: EncodeConfig, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Encode `config.source` into `media_dir/title`; return the title document."""
    plan, info = make_plan(config)
    media = config.media_dir
    if (media / config.title).exists() and not config.force:
        raise PublishError(
            f"title {config.title!r} already exists in {media} (use --force to replace it)"
        )
    staged = staging_dir(media, config.title)
    try:
        for i in range(len(plan.renditions) + (1 if plan.audio else 0)):
            (staged / f"r{i}").mkdir()
        args = build_args(plan, str(staged / "manifest.mpd"))
        bar = Progress(f"encode {config.title}", plan.duration_s, config.progress)
        try:
            run_ffmpeg(args, what=f"encoding {config.source}", on_progress=bar.update, cancel=cancel)
        finally:
            bar.close()
        doc = package(staged, plan, info, config.title)
        if config.quality:
            from encoder.quality import measure_quality

            scores = measure_quality(staged, doc, plan.source, str(plan.fps), config.progress)
            for r in doc["renditions"]:
                if r["id"] in scores:
                    r["quality"] = scores[r["id"]]
        if config.job_id is not None:
            doc["job_id"] = config.job_id
        (staged / "title.json").write_text(json.dumps(doc, indent=2) + "\n")
        verify_title(staged, doc)
        publish(staged, media, config.title, force=config.force)
    except OSError as exc:
        discard(staged)
        raise EncoderError(f"encoding {config.source} failed: {exc.strerror or exc}") from exc
    except BaseException:
        discard(staged)
        raise
    return doc
