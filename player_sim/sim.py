"""The trace simulator: drives a session in virtual time over the link model.

A shell around the pure parts: the session core (:mod:`player_sim.session`, which owns the
algorithm, the playback model and the QoE) and the link (:mod:`player_sim.link`). For
``--model default`` it answers the core's actions at once from the link, as ``abr play``
(:mod:`player_sim.player`) answers the same core's actions with real transfers. Only
``--model pensieve`` keeps its own loop (:func:`_run_pensieve`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from player_sim import abr as abr_registry
from player_sim import session
from player_sim.abr.base import AbrContext, Download, PlayerState
from player_sim.errors import PlayerError
from player_sim.link import Link
from player_sim.model import Model
from player_sim.qoe import REBUFFER_PENALTY, SMOOTH_PENALTY, SegmentRecord, SessionResult, summarise
from player_sim.session import (
    Action,
    BytesReceived,
    CoreConfig,
    Event,
    Finished,
    ManifestLoaded,
    OfferProgress,
    Request,
    ResponseStarted,
    SegmentDone,
    SessionCore,
    TimerFired,
    Wait,
    session_segments,
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


def make_context(video: Video, model: Model, link: Link | None = None, carried: object = None) -> AbrContext:
    """The context an algorithm is built with (the oracle only when a link is given)."""
    return session.make_context(video, model, carried, Oracle(link, model) if link is not None else None)


def run_session(video: Video, trace: Trace, algorithm: str, model: Model, carried: object = None) -> SessionResult:
    """Simulate one session of ``algorithm`` over ``trace``."""
    return _session(video, trace, algorithm, model, carried)[0]


def _session(video: Video, trace: Trace, algorithm: str, model: Model, carried: object) -> tuple[SessionResult, object]:
    link = Link(trace, model.payload_portion)
    offline = not abr_registry.is_online(algorithm)
    if model.name == "pensieve":
        abr = abr_registry.make(algorithm, make_context(video, model, link if offline else None, carried))
        return _run_pensieve(video, trace, abr, link, model), abr.handover()
    core = SessionCore(CoreConfig(algorithm, model, trace.name, carried=carried,
                                  oracle=Oracle(link, model) if offline else None))
    result = _run_default(video, core, link, model)
    return result, core.abr.handover() if core.abr is not None else None


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
    """Pensieve's ``fixed_env.py`` loop (Mao et al. 2017), event for event.

    The one loop outside the session core (:mod:`player_sim.session`), on purpose: its quirks
    (the RTT charged to the delay but not to the trace, the buffer drained in sleep steps
    after the download, no startup threshold, segment 0 at level 1 left out of the score)
    are the published baseline that ``tests/player_sim/test_reproduction.py`` reproduces.
    """
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


def _run_default(video: Video, core: SessionCore, link: Link, model: Model) -> SessionResult:
    """Answer the core's actions at once from the link: the request latency, then the trace's bytes."""
    now = end = base = 0.0
    size = 0

    def send(event: Event) -> list[Action]:
        nonlocal now
        now = event.now_s
        return core.handle(event)

    actions = deque(send(ManifestLoaded(0.0, video)))
    while actions:
        action = actions.popleft()
        if isinstance(action, Wait):
            actions.extend(send(TimerFired(action.until_s)))
        elif isinstance(action, Request):
            latency = link.latency_s(now) if model.use_trace_latency else model.rtt_s
            size = video.sizes_bytes[action.level][action.segment]
            first_byte = now + latency
            end = link.finish_s(first_byte, size)
            base = link.bytes_at(first_byte)
            offered = send(ResponseStarted(first_byte, latency))
            actions.extend(offered or send(SegmentDone(end, size)))
        elif isinstance(action, OfferProgress):
            if action.at_s < end:
                actions.extend(send(BytesReceived(action.at_s, link.bytes_at(action.at_s) - base)))
            else:
                actions.extend(send(SegmentDone(end, size)))
        elif isinstance(action, Finished):
            return action.result
    raise PlayerError("player core: the session ended without a result")
