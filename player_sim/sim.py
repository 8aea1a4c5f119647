"""The trace simulator: drives one ABR object and the playback model in virtual time.

This is a shell around the pure parts (:mod:`player_sim.link`, :mod:`player_sim.playback`,
:mod:`player_sim.abr`): it owns the virtual clock and nothing else. A real-network player
drives the same parts the same way: build the algorithm with ``abr.make(name, AbrContext(...))``,
ask ``choose(PlayerState(...))`` before each request, feed ``Playback.advance(now)`` /
``segment_added(now, duration)`` with ``loop.time()``, offer ``Progress`` to
``check_abandon`` while a download runs, and ``report_download`` when it ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from player_sim import abr as abr_registry
from player_sim.abr.base import AbrContext, Decision, Download, PlayerState, Progress
from player_sim.link import Link
from player_sim.model import Model
from player_sim.playback import Playback
from player_sim.qoe import (
    REBUFFER_PENALTY,
    SMOOTH_PENALTY,
    SegmentRecord,
    SessionResult,
    reward,
    summarise,
)
from player_sim.traces import Trace
from player_sim.video import Video

WARMUP_SESSIONS = 3
"""Sessions replayed before a block of a split sweep (see :func:`run_sessions`)."""


@dataclass(frozen=True)
class Oracle:
    """What an offline algorithm (the optimum) may see: the future network and the model."""

    link: Link
    """The link the session will replay."""
    model: Model
    """The session's rules."""


def session_segments(video: Video, model: Model) -> int:
    """How many segments a session plays."""
    return video.segments if model.max_segments is None else min(model.max_segments, video.segments)


def make_context(video: Video, model: Model, link: Link | None = None, carried: object = None) -> AbrContext:
    """The context an algorithm is built with."""
    return AbrContext(
        video=video,
        max_buffer_s=model.max_buffer_s,
        segments=session_segments(video, model),
        pensieve_quirks=model.pensieve_quirks,
        carried=carried,
        oracle=Oracle(link, model) if link is not None else None,
    )


def run_session(video: Video, trace: Trace, algorithm: str, model: Model, carried: object = None) -> SessionResult:
    """Simulate one session of ``algorithm`` over ``trace``."""
    return _session(video, trace, algorithm, model, carried)[0]


def _session(video: Video, trace: Trace, algorithm: str, model: Model, carried: object) -> tuple[SessionResult, object]:
    link = Link(trace, model.payload_portion)
    offline = not abr_registry.is_online(algorithm)
    abr = abr_registry.make(algorithm, make_context(video, model, link if offline else None, carried))
    if model.name == "pensieve":
        return _run_pensieve(video, trace, abr, link, model), abr.handover()
    return _run_default(video, trace, abr, link, model), abr.handover()


def run_sessions(video: Video, traces: list[Trace], algorithm: str, model: Model,
                 warmup: list[Trace] | None = None,
                 on_each: Callable[[SessionResult], None] | None = None) -> list[SessionResult]:
    """Simulate one session per trace, in order, as a reference sweep does.

    An algorithm may hand state to the next session (:meth:`Abr.handover`); ``warmup`` are
    the traces before the first one, replayed (and not reported) so that a sweep split
    into blocks nearly reproduces a sequential sweep (robustMPC's carried errors in the
    pensieve model mostly forget a session within a few; :data:`WARMUP_SESSIONS` are
    replayed). ``on_each`` is called with every result as it is made (progress bars).
    """
    carried: object = None
    for trace in warmup or []:
        carried = _session(video, trace, algorithm, model, carried)[1]
    results = []
    for trace in traces:
        result, carried = _session(video, trace, algorithm, model, carried)
        results.append(result)
        if on_each is not None:
            on_each(result)
    return results


def _run_pensieve(video: Video, trace: Trace, abr: abr_registry.Abr, link: Link, model: Model) -> SessionResult:
    """Pensieve's ``fixed_env.py`` loop (Mao et al. 2017), event for event."""
    n = session_segments(video, model)
    seg_s = video.segment_s
    kbps = [b / 1000 for b in video.bitrates_bps]
    cap = model.max_buffer_s
    step = model.sleep_step_s
    rtt = model.rtt_s
    sizes = video.sizes_bytes
    t = 0.0  # trace clock (the RTT is charged to the delay, not to the trace: fixed_env.py)
    clock = 0.0  # session clock
    buffer_s = 0.0
    level = model.first_level if model.first_level is not None else 0
    prev_kbps = kbps[level]
    records: list[SegmentRecord] = []
    for k in range(n):
        size = sizes[level][k]
        end = link.finish_s(t, size)
        delay = end - t + rtt
        t = end
        rebuf = max(delay - buffer_s, 0.0)
        buffer_s = max(buffer_s - delay, 0.0) + seg_s
        sleep = 0.0
        if buffer_s > cap:
            sleep = math.ceil((buffer_s - cap) / step) * step if step > 0 else buffer_s - cap
            buffer_s -= sleep
            t += sleep
        clock += delay + sleep
        rate = kbps[level]
        # QoE_lin, inlined from qoe.reward for speed
        r = rate / 1000 - REBUFFER_PENALTY * rebuf - SMOOTH_PENALTY * abs(rate - prev_kbps) / 1000
        records.append(SegmentRecord(k, level, rate, rebuf, buffer_s, clock, delay, r))
        prev_kbps = rate
        abr.report_download(Download(k, level, size, delay, buffer_s, latency_s=rtt))
        if k + 1 < n:
            level = abr.choose(PlayerState(clock, k + 1, buffer_s, level)).level
    return summarise(abr.name, trace.name, records, model.skip_first_in_score, startup_s=records[0].rebuffer_s)


def _run_default(video: Video, trace: Trace, abr: abr_registry.Abr, link: Link, model: Model) -> SessionResult:
    """The richer model: latency per request, startup threshold, buffer cap, abandonment."""
    n = session_segments(video, model)
    seg_s = video.segment_s
    kbps = [b / 1000 for b in video.bitrates_bps]
    threshold = model.startup_threshold_s if model.startup_threshold_s is not None else seg_s
    play = Playback(min(threshold, seg_s * n))
    t = 0.0
    prev_level: int | None = None
    records: list[SegmentRecord] = []
    abandoned = 0
    for k in range(n):
        state = PlayerState(t, k, play.buffer_s, prev_level if prev_level is not None else 0, play.playing)
        decision: Decision = abr.choose(state)
        level = model.first_level if k == 0 and model.first_level is not None else decision.level
        wait = decision.delay_s
        # Never let the buffer exceed the cap: wait until the new segment fits.
        if play.playing:
            wait = max(wait, play.buffer_s + seg_s - model.max_buffer_s)
        if wait > 0 and play.playing:
            t += wait
            play.advance(t)
        stall_before = play.stall_total_s
        request_t = t
        while True:
            latency = link.latency_s(t) if model.use_trace_latency else model.rtt_s
            size = video.sizes_bytes[level][k]
            first_byte = t + latency
            end = link.finish_s(first_byte, size)
            new_level = None
            if model.abandonment and level > 0:
                check = first_byte + model.abandon_check_s
                base = link.bytes_at(first_byte)
                while check < end:
                    play.advance(check)
                    got = link.bytes_at(check) - base
                    new_level = abr.check_abandon(Progress(k, level, size, got, check - t, play.buffer_s))
                    if new_level is not None and new_level < level:
                        break
                    new_level = None
                    check += model.abandon_check_s
            if new_level is None:
                break
            abr.report_download(Download(k, level, int(link.bytes_at(check) - base), check - t, play.buffer_s, True, latency))
            abandoned += 1
            t = check
            level = new_level
        t = end
        play.segment_added(t, seg_s, last=k == n - 1)
        rebuf = play.stall_total_s - stall_before
        prev_kbps = kbps[prev_level] if prev_level is not None else kbps[level]
        r = reward(kbps[level], prev_kbps, rebuf)
        records.append(SegmentRecord(k, level, kbps[level], rebuf, play.buffer_s, t, t - request_t, r))
        abr.report_download(Download(k, level, size, t - request_t, play.buffer_s, latency_s=latency))
        prev_level = level
    startup = play.startup_s or 0.0
    return summarise(abr.name, trace.name, records, model.skip_first_in_score, startup_s=startup,
                     abandoned=abandoned, extra_penalty=REBUFFER_PENALTY * startup)
