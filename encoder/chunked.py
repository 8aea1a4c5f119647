"""`abr encode --chunks`: the video encoded as chunk tasks on a Dask cluster.

Each chunk task decodes its time range once (from a little before it: chunks.py) and
encodes it for every rung with the one-process encode's filter graph and encoder
settings (plan.build_args with a Window), one thread each: a worker core per task. One
more task encodes the audio and subtitles of the whole title in one pass, as the
one-process encode does, so chunk boundaries cannot make an audio gap or click: there is
one AAC stream with one encoder priming (its 1024 samples are covered by the edit list
once, at the start), not one per chunk. Then assemble.py joins the chunks into one
continuous CMAF track per rendition, and `encode` packages and publishes as always.

Files are passed by path: the media folder (chunk outputs go to a hidden folder in it)
and the source must be the same path on every worker (checked first). Chunk outputs are
written to a fresh folder per attempt, and ffmpeg dies with its worker (PR_SET_PDEATHSIG),
so a retried chunk never shares a folder with a dead one; the chunk folders are removed
whatever happens, and the title is published only when every chunk arrived.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from encoder.chunks import KeyframeBefore, chunk_count, windows
from encoder.errors import Cancelled, EncoderError
from encoder.ffmpeg import run_ffmpeg
from encoder.plan import EncodePlan, Window, build_args
from encoder.progress import Progress
from encoder.publish import TMP_PREFIX


@dataclass(frozen=True)
class ChunkJob:
    """One task: a chunk of the video (`window`), or the audio and subtitles (no window)."""

    index: int
    """Chunk number from 0; the audio task comes after the last chunk."""
    plan: EncodePlan
    """The plan this task encodes (video only, or audio and subtitles only)."""
    window: Window | None
    workdir: str
    """The shared folder the task makes its output folder in."""
    abort: str
    """The name of the batch's abort flag (abrstack.cluster.abort_flag)."""

    def __repr__(self) -> str:  # how run_jobs names a failed job
        if self.window is None:
            return "audio and subtitles"
        return f"chunk {self.index + 1} (from frame {self.window.first_frame})"


def run_chunk(job: ChunkJob) -> str:
    """Encode one task into a new folder under `job.workdir`; return the folder's path."""
    from abrstack.cluster import abort_flag

    out = Path(tempfile.mkdtemp(prefix=f"c{job.index:04d}-", dir=job.workdir))
    outputs = len(job.plan.video_outputs()) + len(job.plan.audio_outputs())
    for i in range(outputs):
        (out / f"r{i}").mkdir()
    subs = tuple(str(out / f"sub{k}.vtt") for k in range(len(job.plan.subtitles)))
    args = build_args(job.plan, str(out / "manifest.mpd"), subs, window=job.window)
    with abort_flag(job.abort) as cancel:
        try:
            run_ffmpeg(args, what=f"encoding {job!r} of {job.plan.source}", cancel=cancel,
                       die_with_parent=True)
        except Cancelled:  # the client gave the batch up: no error to log, nothing to retry
            shutil.rmtree(out, ignore_errors=True)
            return ""
    return str(out)


class SourceKeyframes:
    """`keyframe_before(t)` from the source's index: a seek (PyAV, no decode) per question."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.container: Any = None

    def __enter__(self) -> KeyframeBefore:
        import av

        self.container = av.open(self.source)
        stream = self.container.streams.video[0]
        tb = stream.time_base
        start = stream.start_time or 0

        def before(t: float) -> float:
            try:
                self.container.seek(int(t / tb) + start, stream=stream, backward=True)
                for packet in self.container.demux(stream):
                    if packet.pts is not None:
                        return max(0.0, float((packet.pts - start) * tb))
            except (av.FFmpegError, ValueError):
                pass
            return 0.0  # unknown: as if the decode started at the beginning

        return before

    def __exit__(self, *exc: object) -> None:
        self.container.close()


def chunk_jobs(plan: EncodePlan, count: int, workdir: Path, abort: str, threads: int = 1,
               keyframe_before: KeyframeBefore | None = None) -> list[ChunkJob]:
    """The audio task (when there is audio or subtitles) first, then the chunks in order."""
    video = replace(plan, audio=False, audio_renditions=(), subtitles=(), side_files=())
    jobs = [ChunkJob(k, video, w, str(workdir), abort)
            for k, w in enumerate(windows(plan, count, threads, keyframe_before))]
    if plan.audio_outputs() or plan.subtitles:
        rest = replace(plan, renditions=(), codecs=())
        jobs.insert(0, ChunkJob(len(jobs), rest, None, str(workdir), abort))
    return jobs


def encode_chunked(client: Any, plan: EncodePlan, staged: Path, media: Path, spec: str,
                   subtitle_files: tuple[Path, ...], progress: str = "auto") -> int:
    """Encode `plan` as chunk tasks on `client` into `staged`; return the chunk count."""
    from abrstack.cluster import check_shared_file, check_shared_path, run_jobs
    from encoder.assemble import assemble

    if plan.encryption is not None:
        raise EncoderError("--chunks cannot encrypt yet (every chunk would restart the CENC "
                           "counters under one key); encode without --chunks")
    check_shared_path(client, media)
    check_shared_file(client, Path(plan.source))
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    count = chunk_count(spec, plan.duration_s, workers)
    workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}chunks-{os.getpid()}-", dir=media))
    try:
        with SourceKeyframes(plan.source) as keyframe_before:
            jobs = chunk_jobs(plan, count, workdir, f"abr-encode-{secrets.token_hex(8)}",
                              keyframe_before=keyframe_before)
        bar = Progress(f"encode {len(jobs)} tasks", float(len(jobs)), progress)
        done = 0

        def finished(_: int) -> None:
            nonlocal done
            done += 1
            bar.update(float(done))

        try:
            folders = [Path(f) for f in run_jobs(client, run_chunk, jobs, what="encode task",
                                                 abort=jobs[0].abort, on_done=finished)]
        finally:
            bar.close()
        extra = next((f for j, f in zip(jobs, folders, strict=True) if j.window is None), None)
        chunks = [f for j, f in zip(jobs, folders, strict=True) if j.window is not None]
        ids = [o.id for o in plan.video_outputs()]
        assemble(staged, len(ids), chunks, extra, subtitle_files, ids)
        return len(chunks)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
