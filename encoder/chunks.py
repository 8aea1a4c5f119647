"""Where a chunked encode cuts the title (pure): chunks of whole segments of the
one-process encode, and the window each chunk task encodes.

The one-process encode forces keyframes with ``expr:gte(t,n_forced*S)`` (plan.py), where
ffmpeg evaluates ``t`` as frame number x ``av_q2d(1/fps)``, and x264 adds one when a GOP
reaches ``g`` frames. The dash muxer then starts a segment at a keyframe once the current
segment is at least ``seg_duration`` (in microseconds) long, measured from the segment's
own start. Both rules are replayed here on frame numbers, so a chunk boundary is a frame
where the one-process encode starts a segment, and a chunk forces exactly that encode's
keyframes (as a list of times half a frame early, immune to rounding). Inside a chunk
the muxer's rule is relative, so the chunk's segments are the one-process segments.

With 25 fps and 1.5-s segments, keyframes fall 38 and 37 frames apart, and the relative
rule keeps a segment going past a 1.48-s keyframe: segments are 3.0 s. That is the
one-process encode's behaviour; the chunks reproduce it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

from encoder.errors import EncoderError
from encoder.plan import EncodePlan, Window

MIN_CHUNK_S = 10.0
"""`--chunks auto` makes no chunk shorter (each costs a process start and a seek)."""
MAX_CHUNK_S = 300.0
"""`--chunks auto` makes no chunk longer (a lost worker repeats at most this much)."""
MAX_CHUNKS = 1000
MAX_KEY_TIMES = 4000
"""Forced keyframes listed per chunk (the argument stays far below Linux's 128 KiB)."""
SEEK_MARGIN_S = 1.0
"""A chunk decodes from this much before its first frame, so `fps` picks as in one pass."""


def forced_keyframes(frames: int, fps: Fraction, segment_s: float) -> list[int]:
    """Frames forced by ``expr:gte(t,n_forced*S)``, computed in doubles as ffmpeg does."""
    step = fps.denominator / fps.numerator  # av_q2d of the encoder time base 1/fps
    seg = float(f"{segment_s:g}")  # the expression carries S printed with %g
    out: list[int] = []
    for n in range(frames):
        if n * step >= len(out) * seg:
            out.append(n)
    return out


def keyframes(frames: int, fps: Fraction, segment_s: float, gop: int) -> list[int]:
    """Every keyframe: the forced ones and those the encoder adds at `gop` frames."""
    forced = set(forced_keyframes(frames, fps, segment_s))
    out: list[int] = []
    for n in range(frames):
        if n in forced or not out or n - out[-1] >= gop:
            out.append(n)
    return out


def segment_starts(keys: list[int], fps: Fraction, segment_s: float) -> list[int]:
    """The frames the dash muxer starts segments at (its relative rule, in microseconds)."""
    seg = Fraction(round(segment_s * 1_000_000), 1_000_000)
    starts = [0]
    for k in keys[1:]:
        if Fraction(k - starts[-1]) / fps >= seg:
            starts.append(k)
    return starts


def chunk_count(spec: str, duration_s: float, workers: int) -> int:
    """``--chunks``: ``auto`` (two per worker, each MIN_CHUNK_S to MAX_CHUNK_S) or a number."""
    if spec == "auto":
        lo = math.ceil(duration_s / MAX_CHUNK_S)
        hi = max(1, math.floor(duration_s / MIN_CHUNK_S))
        return max(1, min(max(2 * workers, lo), hi))
    try:
        n = int(spec)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_CHUNKS:
        raise EncoderError(f"--chunks {spec!r} is neither 'auto' nor a number from 1 to {MAX_CHUNKS}")
    return n


def frame_count(plan: EncodePlan) -> int:
    """Frames on the `fps` filter's output for the source's duration."""
    return max(1, math.ceil(Fraction(plan.duration_s) * plan.fps - Fraction(1, 1000)))


KeyframeBefore = Callable[[float], float]
"""The time of the source's last keyframe at or before a time (seconds from its start)."""
CANDIDATES = 8
"""Segment starts weighed per chunk boundary (each costs a seek in the source's index)."""


def boundaries(plan: EncodePlan, count: int, keyframe_before: KeyframeBefore | None = None) -> list[int]:
    """The first frame of every chunk (0 first): segment starts near equal shares.

    A chunk decodes from the source keyframe before its seek point and throws that away:
    with `keyframe_before`, each boundary is the start, among the CANDIDATES nearest to an
    equal share and within a quarter share of it, that wastes the least decode."""
    frames = frame_count(plan)
    step = max(o.rendition.fps_divisor for o in plan.video_outputs())
    keys = keyframes(frames, plan.fps, plan.segment_s, plan.gop_frames)
    # Half-rate rungs take every other frame: a chunk must start on one they keep.
    starts = [s for s in segment_starts(keys, plan.fps, plan.segment_s)[1:] if s % step == 0]
    rate = float(plan.fps)
    chosen: list[int] = []
    for i in range(1, count):
        if not starts:
            break
        ideal = frames * i / count
        near = sorted(starts, key=lambda s: (abs(s - ideal), s))[:CANDIDATES]
        best = near[0]
        if keyframe_before is not None:
            close = [s for s in near if abs(s - ideal) <= frames / count / 4] or [best]

            def waste(s: int) -> float:
                seek = max(0.0, s / rate - SEEK_MARGIN_S)
                return seek - keyframe_before(seek)

            best = min(close, key=lambda s: (round(waste(s), 3), abs(s - ideal)))
        if best not in chosen:
            chosen.append(best)
    return [0, *sorted(chosen)]


def windows(plan: EncodePlan, count: int, threads: int = 1,
            keyframe_before: KeyframeBefore | None = None) -> list[Window]:
    """The windows of `count` chunks (fewer when the title has fewer segments)."""
    frames = frame_count(plan)
    firsts = boundaries(plan, count, keyframe_before)
    # A source may hold a few frames more than its duration says: the last chunk runs to
    # the end, with the forced keyframes listed past it.
    forced = forced_keyframes(frames + 10 * plan.gop_frames, plan.fps, plan.segment_s)
    rate = float(plan.fps)
    out = []
    for a, b in zip(firsts, [*firsts[1:], None], strict=True):
        keys = [max(0.0, (k - a - 0.5) / rate) for k in forced if a <= k and (b is None or k < b)]
        if len(keys) > MAX_KEY_TIMES:
            raise EncoderError(f"a chunk has more than {MAX_KEY_TIMES} segments: use more --chunks")
        seek = max(0.0, a / rate - SEEK_MARGIN_S)
        read = None if b is None else b / rate - seek + SEEK_MARGIN_S
        out.append(Window(seek_s=seek, read_s=read, first_frame=a, end_frame=b,
                          key_times=tuple(keys), threads=threads))
    return out
