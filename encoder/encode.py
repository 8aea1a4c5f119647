"""`abr encode`: probe -> plan -> one ffmpeg run -> package -> verify -> publish."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from encoder.encrypt import drop_other_keys, make_key, store_key
from encoder.errors import EncoderError, LadderError, PublishError
from encoder.ffmpeg import ffmpeg_encoders, ffmpeg_exe, ffmpeg_filters, run_ffmpeg
from encoder.ladder import fit_ladder, load_ladder
from encoder.package import new_version, package
from encoder.plan import EncodePlan, build_args, output_fps, parse_codecs
from encoder.probe import SourceInfo, probe
from encoder.progress import Progress
from encoder.publish import check_title_name, discard, publish, staging_dir
from encoder.tracks import (
    check_subtitle_file,
    parse_audio_langs,
    parse_side_subtitle,
    plan_audio,
    plan_subtitles,
)
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
    """Video codec (h264, hevc, vp9, av1), or several: `h264,hevc,av1` (one ladder each)."""
    quality: bool = False
    """Measure VMAF, PSNR and SSIM of every rung."""
    force: bool = False
    """Replace an existing title of the same name."""
    progress: str = "auto"
    """Progress display: auto, bar, plain, json or none."""
    job_id: str | None = None
    """The job service's id for this encode, recorded in title.json as `job_id`."""
    audio_lang: str | None = None
    """`--audio-lang en,fr`: languages of the source's audio streams in order (`-` keeps one)."""
    subtitles: tuple[str, ...] = ()
    """`--subtitles FILE[:LANG]` side-loaded subtitle files."""
    surround: bool = True
    """Keep a 5.1 rendition of 5.1 (or more) sources besides the stereo one."""
    deinterlace: str = "auto"
    """auto (field order + idet), on, off."""
    encrypt: str | None = None
    """`clearkey`: CENC-encrypt every sample (W3C ClearKey); None: clear."""
    key: str | None = None
    """The content key (32 hex digits); default: made."""
    kid: str | None = None
    """The key id (32 hex digits); default: made."""
    license_url: str | None = None
    """The licence server URL written into the manifests (the seam for Widevine/FairPlay)."""
    target_vmaf: float | None = None
    """`--ladder per-title`: VMAF of the top rung (default 95)."""
    max_rungs: int | None = None
    """`--ladder per-title`: at most this many rungs (default 6)."""
    min_kbps: float | None = None
    """`--ladder per-title`: the bottom rung's bitrate (default 200)."""
    chunks: str | None = None
    """`--chunks auto|N`: encode the video as N chunk tasks on a Dask cluster; None: one ffmpeg."""
    scheduler: str | None = None
    """`--scheduler local|tcp://HOST:8786`: the cluster for chunks and per-title probes
    (default with --chunks: local)."""
    workers: int | None = None
    """`--workers N`: worker processes of a local cluster (default: one per CPU)."""


def make_plan(config: EncodeConfig, client: Any = None) -> tuple[EncodePlan, Any]:
    """Check every option and the source, and decide the encode (no files written except
    per-title probes'); with a Dask `client`, per-title probes run on its cluster."""
    check_title_name(config.title)
    if not MIN_SEGMENT_S <= config.segment_s <= MAX_SEGMENT_S:
        raise LadderError(
            f"--segment-s {config.segment_s:g} is out of range ({MIN_SEGMENT_S:g} to {MAX_SEGMENT_S:g} s)"
        )
    codecs = parse_codecs(config.codec, ffmpeg_encoders())
    if config.quality and "libvmaf" not in ffmpeg_filters():
        raise EncoderError(f"--quality needs an ffmpeg with libvmaf; {ffmpeg_exe()} has none "
                           "(the imageio-ffmpeg build has it: set ABR_FFMPEG to it)")
    if config.deinterlace not in ("auto", "on", "off"):
        raise EncoderError(f"--deinterlace {config.deinterlace!r} is not auto, on or off")
    encryption = None
    if config.encrypt is not None:
        if config.encrypt != "clearkey":
            raise EncoderError(f"--encrypt {config.encrypt!r} is not known; only clearkey (CENC "
                               "with the W3C ClearKey system) is: Widevine, PlayReady and FairPlay "
                               "need a licence server of theirs (--license-url)")
        if config.quality:
            raise EncoderError("--quality cannot score encrypted renditions; encode without --encrypt")
        encryption = make_key(config.key, config.kid)
    elif config.key or config.kid or config.license_url:
        raise EncoderError("--key, --kid and --license-url need --encrypt clearkey")
    langs = parse_audio_langs(config.audio_lang)
    sides = tuple(parse_side_subtitle(arg) for arg in config.subtitles)
    for side in sides:
        check_subtitle_file(side)
    per_title = config.ladder == "per-title"
    if not per_title and (config.target_vmaf, config.max_rungs, config.min_kbps) != (None,) * 3:
        raise LadderError("--target-vmaf, --max-rungs and --min-kbps need --ladder per-title")
    if per_title:
        from encoder.pertitle import check_options

        if len(codecs) > 1:
            raise LadderError("--ladder per-title takes one codec (h264, vp9 or av1), not a list")
        check_options(*_per_title_options(config))
    rungs = () if per_title else load_ladder(config.ladder)
    info = probe(config.source)
    record = None
    if per_title:
        from encoder.pertitle import per_title_ladder

        bar = Progress("probes", 1.0, config.progress)
        try:
            target, most, least = _per_title_options(config)
            rungs, record = per_title_ladder(
                str(info.path), codecs[0], info.width, info.height, info.duration_s,
                target_vmaf=target, max_rungs=most, min_kbps=least,
                on_done=lambda done, total: bar.update(done / total),
                client=client, shared_dir=config.media_dir if client is not None else None)
        finally:
            bar.close()
    notes: list[str] = []
    interlace = _interlace(info, config.deinterlace)
    fps = output_fps(info.fps * (2 if interlace["deinterlaced"] else 1))
    if interlace["deinterlaced"]:
        notes.append(f"interlaced source ({info.field_order}): deinterlaced with bwdif, one frame "
                     f"per field ({float(fps):g} fps)")
    renditions = fit_ladder(rungs, info.width, info.height, float(fps))
    audio = plan_audio(info, langs, config.surround)
    subs, sub_notes = plan_subtitles(info, sides)
    notes += sub_notes
    notes += [f"stream {s} is not carried (neither video, audio nor subtitles)" for s in info.other_streams]
    if any(t.channels > 6 for t in info.audio_tracks):
        notes.append("audio of more than 6 channels is carried as 5.1 and stereo")
    plan = EncodePlan(
        source=info.path,
        renditions=renditions,
        codec=codecs[0],
        fps=fps,
        segment_s=config.segment_s,
        audio=info.has_audio,
        duration_s=info.duration_s,
        codecs=codecs if len(codecs) > 1 else (),
        audio_renditions=audio,
        subtitles=subs,
        side_files=tuple(str(s.path) for s in sides),
        deinterlace=bool(interlace["deinterlaced"]),
        bit_depth=info.bit_depth,
        color=(info.color_primaries, info.color_transfer, info.color_matrix),
    )
    for c in plan.video_codecs:
        fmt = plan.video_format(c)
        if fmt.tonemap:
            notes.append(f"{c}: the HDR source ({'PQ' if info.color_transfer == 16 else 'HLG'}) is "
                         "tone-mapped to 8-bit SDR BT.709 (use hevc, av1 or vp9 to keep HDR)")
        elif info.bit_depth > 8 and fmt.bit_depth == 8:
            notes.append(f"{c}: the {info.bit_depth}-bit source is encoded as 8-bit "
                         "(use hevc, av1 or vp9 to keep 10-bit)")
    if any(r.fps_divisor > 1 for r in renditions):
        low = max(r.height for r in renditions if r.fps_divisor > 1)
        notes.append(f"rungs up to {low}p run at half rate ({float(fps) / 2:g} fps)")
    plan = replace(plan, notes=tuple(notes), encryption=encryption, license_url=config.license_url,
                   per_title=record)
    return plan, replace(info, interlace=interlace)


def _per_title_options(config: EncodeConfig) -> tuple[float, int, float]:
    return (95.0 if config.target_vmaf is None else config.target_vmaf,
            6 if config.max_rungs is None else config.max_rungs,
            200.0 if config.min_kbps is None else config.min_kbps)


def _interlace(info: SourceInfo, mode: str) -> dict[str, Any]:
    from encoder.interlace import detect

    if mode == "off":
        return {"field_order": info.field_order, "interlaced": info.flagged_interlaced, "deinterlaced": False}
    found = detect(info) if mode == "auto" else {"field_order": info.field_order, "interlaced": True}
    return {**found, "deinterlaced": bool(found["interlaced"])}


def _check_cluster_options(config: EncodeConfig) -> None:
    from abrstack.cluster import check_scheduler
    from encoder.chunks import chunk_count

    if config.chunks is not None:
        chunk_count(config.chunks, 1.0, 1)
        if config.encrypt is not None:
            raise EncoderError("--chunks cannot encrypt yet (every chunk would restart the CENC "
                               "counters under one key); encode without --chunks")
    if config.scheduler is not None:
        check_scheduler(config.scheduler)
        if config.chunks is None and config.ladder != "per-title":
            raise EncoderError("--scheduler needs --chunks or --ladder per-title (the work it spreads)")
    if config.workers is not None:
        if not 1 <= config.workers <= 64:
            raise EncoderError(f"--workers {config.workers} is out of range (1 to 64)")
        if (config.scheduler or "local") != "local" or config.chunks is None and config.scheduler is None:
            raise EncoderError("--workers sizes a local cluster: it needs --chunks or --scheduler local")


def encode(config: EncodeConfig, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Encode `config.source` into `media_dir/title`; return the title document."""
    _check_cluster_options(config)
    if config.chunks is None and config.scheduler is None:
        return _encode(config, None, cancel)
    from abrstack.cluster import open_client

    config.media_dir.mkdir(parents=True, exist_ok=True)
    with open_client(config.scheduler or "local", workers=config.workers) as client:
        return _encode(config, client, cancel)


def _encode(config: EncodeConfig, client: Any, cancel: threading.Event | None) -> dict[str, Any]:
    plan, info = make_plan(config, client)
    media = config.media_dir
    if (media / config.title).exists() and not config.force:
        raise PublishError(
            f"title {config.title!r} already exists in {media} (use --force to replace it)"
        )
    staged = staging_dir(media, config.title)
    version = new_version()
    key_file = None
    try:
        if plan.encryption is not None:  # beside the media, never in the title folder
            key_file = store_key(media, config.title, version, plan.encryption)
        for i in range(len(plan.video_outputs()) + len(plan.audio_outputs())):
            (staged / f"r{i}").mkdir()
        subtitle_files = tuple(staged / f"sub{k}.vtt" for k in range(len(plan.subtitles)))
        if config.chunks is not None:
            from encoder.chunked import encode_chunked

            count = encode_chunked(client, plan, staged, media, config.chunks, subtitle_files,
                                   config.progress)
            plan = replace(plan, notes=(*plan.notes, f"encoded in {count} chunk{'s' * (count != 1)} on Dask"))
        else:
            args = build_args(plan, str(staged / "manifest.mpd"), tuple(map(str, subtitle_files)))
            bar = Progress(f"encode {config.title}", plan.duration_s, config.progress)
            try:
                run_ffmpeg(args, what=f"encoding {config.source}", on_progress=bar.update, cancel=cancel)
            finally:
                bar.close()
        doc = package(staged, plan, info, config.title, version, subtitle_files=subtitle_files)
        if config.quality:
            from encoder.quality import measure_quality

            scores = measure_quality(staged, doc, plan.source, str(plan.fps), config.progress)
            for r in doc["renditions"]:
                if r["id"] in scores:
                    r["quality"] = scores[r["id"]]
        if config.job_id is not None:
            doc["job_id"] = config.job_id
        if plan.per_title is not None:
            doc["per_title"] = plan.per_title
        (staged / "title.json").write_text(json.dumps(doc, indent=2) + "\n")
        verify_title(staged, doc)
        publish(staged, media, config.title, force=config.force)
    except OSError as exc:
        discard(staged, key_file)
        raise EncoderError(f"encoding {config.source} failed: {exc.strerror or exc}") from exc
    except BaseException:
        discard(staged, key_file)
        raise
    drop_other_keys(media, config.title, version)
    return doc
