"""`abr sample`, `abr encode`, `abr encoder serve` and `abr encoder worker`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

PROGRESS_MODES = ("auto", "bar", "plain", "json", "none")
PROGRESS_HELP = ("progress display on stderr: bar (with ETA), plain lines, json lines, none, or auto: "
                 "bar on a terminal, else plain (default auto)")


def register(subparsers: Any) -> None:
    """Add ``abr sample``, ``abr encode`` and ``abr encoder serve`` to the ``abr`` command line."""
    p = subparsers.add_parser(
        "sample", help="make a synthetic source video with audio (ffmpeg lavfi)",
        description="Make a synthetic source video with ffmpeg's lavfi: the testsrc2 test pattern "
                    "(H.264, yuv420p) with a 440 Hz AAC tone, to encode with `abr encode` when no "
                    "real source is at hand.")
    p.add_argument("out", type=Path, help="output file, e.g. media/sources/sample.mp4")
    p.add_argument("--duration", type=float, default=30.0,
                   help="length in seconds, more than 0 and at most 3600 (default 30)")
    p.add_argument("--size", default="1920x1080",
                   help="WIDTHxHEIGHT in pixels, 16x16 to 7680x4320 (default 1920x1080)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate, frames per second (default 30)")
    p.add_argument("--no-audio", action="store_true", help="video only (default: with the tone)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto", help=PROGRESS_HELP)
    p.set_defaults(handler=_sample)

    e = subparsers.add_parser(
        "encode", help="encode a local video into an HLS + DASH ladder",
        description="Encode a local video into a bitrate ladder packaged for both HLS (master.m3u8) "
                    "and DASH (manifest.mpd) from one ffmpeg run: probe the source, fit the ladder "
                    "to it (never upscaling), encode with capped VBR, package into segments, "
                    "verify, and publish MEDIA/TITLE atomically with a title.json.")
    e.add_argument("source", type=Path, help="the local video file")
    e.add_argument("--title", required=True, help="title name (its folder under --media)")
    e.add_argument("--media", type=Path, default=Path("media"), help="media folder (default media)")
    e.add_argument("--ladder", default="default",
                   help="'default' (1080p 5 Mbps, 720p 2.8, 480p 1.2, 360p 0.6, 240p 0.3) or a "
                        "ladder JSON file, or 'per-title' (probes + VMAF convex hull; default: default)")
    e.add_argument("--target-vmaf", type=float, default=None, metavar="V",
                   help="--ladder per-title: VMAF of the top rung (default 95)")
    e.add_argument("--max-rungs", type=int, default=None, metavar="N",
                   help="--ladder per-title: at most N rungs (default 6)")
    e.add_argument("--min-kbps", type=float, default=None, metavar="K",
                   help="--ladder per-title: bitrate of the bottom rung (default 200)")
    e.add_argument("--segment-s", type=float, default=4.0, metavar="S",
                   help="target segment duration in seconds, 1 to 30 (default 4)")
    e.add_argument("--codec", default="h264",
                   help="video codec: h264, hevc, vp9 or av1, or several, comma-separated "
                        "(h264,hevc,av1: one ladder each in one master playlist and MPD; default h264)")
    e.add_argument("--audio-lang", default=None, metavar="LANG[,LANG...]",
                   help="languages of the source's audio tracks in order (ISO 639: en, fr, deu, pt-BR; "
                        "'-' keeps a track's own tag, as in --audio-lang=-,fr; default: the source's tags, else und)")
    e.add_argument("--subtitles", action="append", default=[], metavar="FILE[:LANG]",
                   help="add a subtitle file (SRT, WebVTT, ASS/SSA) as a WebVTT rendition; repeatable "
                        "(default: only the source's text subtitle tracks)")
    e.add_argument("--no-surround", action="store_true",
                   help="stereo only (default: a 5.1 source also gets a 5.1 AAC rendition)")
    e.add_argument("--deinterlace", choices=("auto", "on", "off"), default="auto",
                   help="auto: when the stream is flagged interlaced and idet confirms it; "
                        "bwdif, one frame per field (default auto)")
    e.add_argument("--encrypt", choices=("clearkey",), default=None,
                   help="CENC-encrypt every video and audio sample (W3C ClearKey; the key is kept in "
                        "MEDIA/.keys/, served by `abr encoder serve --key-token`; default: clear)")
    e.add_argument("--key", default=None, metavar="HEX",
                   help="with --encrypt: the AES-128 content key, 32 hex digits (default: made)")
    e.add_argument("--kid", default=None, metavar="HEX",
                   help="with --encrypt: the key id, 32 hex digits (default: made)")
    e.add_argument("--license-url", default=None, metavar="URL",
                   help="with --encrypt: the licence server URL written into the manifests, e.g. "
                        "http://127.0.0.1:8070/keys/TITLE (default: none; players are told it)")
    e.add_argument("--quality", action="store_true",
                   help="measure VMAF, PSNR (dB) and SSIM per rung (needs ffmpeg with libvmaf; "
                        "default off)")
    e.add_argument("--chunks", default=None, metavar="auto|N",
                   help="encode the video as N chunks of whole segments, in parallel on a Dask "
                        "cluster, joined into one continuous track per rendition; auto: two per "
                        "worker, 10 to 300 s each (default: one ffmpeg process)")
    e.add_argument("--scheduler", default=None, metavar="local|tcp://HOST:8786",
                   help="the Dask cluster for --chunks and --ladder per-title probes: local (a "
                        "LocalCluster of --workers processes) or a `dask scheduler` address; the "
                        "media folder and the source must be the same path on every worker "
                        "(default with --chunks: local; else no cluster)")
    e.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --scheduler local: worker processes, 1 to 64 (default: one per CPU)")
    e.add_argument("--force", action="store_true",
                   help="replace an existing title (default: refuse)")
    e.add_argument("--progress", choices=PROGRESS_MODES, default="auto", help=PROGRESS_HELP)
    e.add_argument("--json", action="store_true",
                   help="print title.json instead of a summary (default: summary)")
    e.add_argument("--redis", default=None, metavar="URL",
                   help="announce the title on the event bus at URL (topic titles) after it is "
                        "published (default: no event)")
    e.add_argument("--job-id", default=None,
                   help="record this job id in title.json (used by the job service; default none)")
    e.set_defaults(handler=_encode)

    s = subparsers.add_parser(
        "encoder", help="the encoding job service",
        description="The encoding job service: `abr encoder serve` runs an HTTP API that queues "
                    "`abr encode` jobs on sources of one inputs folder and keeps them across "
                    "restarts.")
    ssub = s.add_subparsers(dest="encoder_command", metavar="SUBCOMMAND", required=True)
    serve = ssub.add_parser(
        "serve", help="run the encoding job service (HTTP API)",
        description="Run the encoding job service: POST /jobs queues an encode of a file from "
                    "--inputs (JSON: source, title, and optionally ladder, segment_s, codec, "
                    "quality, force), GET /jobs and /jobs/ID report state and progress, DELETE "
                    "/jobs/ID cancels or removes, GET /healthz. Jobs persist as JSON files in "
                    "--state, so a restart loses none; each encode runs as a child `abr encode` "
                    "process. One JSON log line per request on stderr.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8070,
                       help="TCP port; 0 picks a free one (default 8070)")
    serve.add_argument("--inputs", type=Path, default=Path("media/sources"),
                       help="the only folder sources are taken from (default media/sources)")
    serve.add_argument("--media", type=Path, default=Path("media"),
                       help="folder titles are published to (default media)")
    serve.add_argument("--state", type=Path, default=None,
                       help="job state folder (default MEDIA/.jobs)")
    serve.add_argument("--concurrency", type=int, default=1,
                       help="encodes run at once, at least 1 (default 1)")
    serve.add_argument("--key-token", default=None, metavar="TOKEN",
                       help="also serve POST /keys/TITLE (ClearKey licences of --encrypt titles) to "
                            "requests with 'Authorization: Bearer TOKEN', at least 16 characters; "
                            "or set ABR_KEY_TOKEN (default: no key server)")
    serve.add_argument("--redis", default=None, metavar="URL",
                       help="keep jobs in Redis at URL and queue them on the jobs topic for "
                            "`abr encoder worker`s, which run the encodes (default: no Redis; "
                            "this service runs --concurrency encodes itself)")
    serve.add_argument("--scheduler", default=None, metavar="local|tcp://HOST:8786",
                       help="without --redis: fan every job's chunks out on this Dask cluster (abr "
                            "encode --chunks auto --scheduler ...); --media and --inputs must be the "
                            "same path on every Dask worker (default: one ffmpeg process per job)")
    serve.set_defaults(handler=_serve)

    w = ssub.add_parser(
        "worker", help="take encoding jobs from the Redis work queue and run them",
        description="Take encoding jobs queued by `abr encoder serve --redis URL` through the "
                    "consumer group 'encoders' of the jobs topic, one at a time, and run each as "
                    "a child `abr encode`. Any number of workers may run, on any machine that "
                    "sees --media and --inputs. A job whose worker dies is taken by another after "
                    "--visibility-s and run again from 0%; its title is published once.")
    w.add_argument("--redis", required=True, metavar="URL",
                   help="the event bus, e.g. redis://127.0.0.1:6379/0 (required; no default)")
    w.add_argument("--media", type=Path, default=Path("media"),
                   help="folder titles are published to (default media)")
    w.add_argument("--inputs", type=Path, default=Path("media/sources"),
                   help="the only folder sources are taken from (default media/sources)")
    w.add_argument("--max-attempts", type=int, default=3, metavar="N",
                   help="runs of a job (workers dying under it) before it fails (default 3)")
    w.add_argument("--visibility-s", type=float, default=30.0, metavar="S",
                   help="a job whose worker has not renewed its claim for S seconds is taken by "
                        "another worker, 1 to 3600 (default 30)")
    w.add_argument("--name", default=None,
                   help="this worker's name in the group and the job state (default HOST-PID)")
    w.add_argument("--chunks", default=None, metavar="auto|N",
                   help="encode every job as chunks on a Dask cluster (`abr encode --chunks`; "
                        "default: one ffmpeg process per job)")
    w.add_argument("--scheduler", default=None, metavar="local|tcp://HOST:8786",
                   help="the Dask cluster for --chunks (`abr encode --scheduler`; default with "
                        "--chunks: local)")
    w.set_defaults(handler=_worker)


def _terminate_as_interrupt() -> None:
    """SIGTERM cleans up like Ctrl-C (no partial title is left)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _sample(args: argparse.Namespace) -> int:
    from encoder.sample import make_sample, parse_size

    _terminate_as_interrupt()
    make_sample(args.out, args.duration, parse_size(args.size), args.fps, not args.no_audio,
                args.progress)
    print(f"wrote {args.out}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from encoder.encode import EncodeConfig, encode

    _terminate_as_interrupt()
    config = EncodeConfig(
        source=args.source, title=args.title, media_dir=args.media, ladder=args.ladder,
        segment_s=args.segment_s, codec=args.codec, quality=args.quality, force=args.force,
        progress=args.progress, job_id=args.job_id, audio_lang=args.audio_lang,
        subtitles=tuple(args.subtitles), surround=not args.no_surround, deinterlace=args.deinterlace,
        encrypt=args.encrypt, key=args.key, kid=args.kid, license_url=args.license_url,
        target_vmaf=args.target_vmaf, max_rungs=args.max_rungs, min_kbps=args.min_kbps,
        chunks=args.chunks, scheduler=args.scheduler, workers=args.workers,
    )
    replaced = (args.media / args.title).exists()
    doc = encode(config)
    if args.redis:
        from encoder.announce import announce

        if not announce(args.redis, doc, replaced):
            print(f"warning: title {args.title} is published but the event bus at {args.redis} "
                  "did not answer; no titles event was sent", file=sys.stderr)
    for note in doc.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(summary(doc, args.media / args.title), file=sys.stdout)
    return 0


def summary(doc: dict[str, Any], folder: Path) -> str:
    """A short human summary of a title (printed after an encode and by the demo)."""
    lines = [
        f"title {doc['title']}: {doc['duration_s']:.1f} s, {doc['codec']}, "
        f"{doc['segment_s']:g}-s segments -> {folder}",
        f"  {'rendition':<10} {'size':>10} {'target':>9} {'average':>9} {'peak':>9} {'segments':>8}  quality",
    ]
    for r in doc["renditions"]:
        if r["kind"] == "video":
            size = f"{r['width']}x{r['height']}"
        elif r["kind"] == "audio":
            size = f"{r.get('language', 'und')} {r['channels']}ch"
        else:
            size = f"{r['language']} vtt"
        q = r.get("quality")
        qtext = f"VMAF {q['vmaf']:.1f}, PSNR {q['psnr_db']:.1f} dB, SSIM {q['ssim']:.3f}" if q else ""
        lines.append(
            f"  {r['id']:<10} {size:>10} {r.get('target_bitrate_bps', 0) / 1000:>7.0f}k "
            f"{r['average_bitrate_bps'] / 1000:>7.0f}k {r['peak_bitrate_bps'] / 1000:>7.0f}k "
            f"{len(r['segments']):>8}  {qtext}"
        )
    lines.append(f"  play: {folder / 'master.m3u8'}  |  {folder / 'manifest.mpd'}")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    from encoder.service import ServiceConfig, run

    config = ServiceConfig(
        host=args.host, port=args.port, inputs=args.inputs, media=args.media,
        state=args.state or args.media / ".jobs", concurrency=args.concurrency,
        key_token=args.key_token or os.environ.get("ABR_KEY_TOKEN") or None, redis=args.redis,
        scheduler=args.scheduler,
    )
    run(config)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from encoder.worker import WorkerConfig, run

    run(WorkerConfig(redis=args.redis, media=args.media, inputs=args.inputs,
                     max_attempts=args.max_attempts, visibility_s=args.visibility_s, name=args.name,
                     chunks=args.chunks, scheduler=args.scheduler))
    return 0
