"""The offline optimum: dynamic programming over (segment, level, discretised buffer).

Knowing the whole trace, the best level sequence under QoE_lin is found by DP. A state
after segment ``k`` is (level, buffer bin); each keeps the best score reaching it together
with its exact buffer and trace clock, so transitions replay the trace exactly and only
the merging of paths within a bin is approximate (bins of 0.2 s by default; 0.1 s changes FCC means by <0.05%). The result
is a feasible plan, so its score is a lower bound of the true optimum and an upper bound
for every online algorithm up to that discretisation (in the spirit of the "offline
optimal" of Yin et al. 2015 and Mao et al. 2017).

The DP follows the pensieve model's rules exactly; in the default model the plan is
replayed as a fixed schedule (the model's startup threshold is not planned for).
"""

from __future__ import annotations

import math

import numpy as np

from player_sim.abr.base import Abr, AbrContext, Decision, PlayerState, Progress, register
from player_sim.qoe import REBUFFER_PENALTY, SMOOTH_PENALTY

BIN_S = 0.2


def plan(ctx: AbrContext, bin_s: float | None = None) -> list[int]:
    """The level of every segment in the best plan found."""
    bin_s = BIN_S if bin_s is None else bin_s
    oracle = ctx.oracle
    if oracle is None:
        raise ValueError("the offline optimum needs the trace (it cannot drive a real player)")
    link, model = oracle.link, oracle.model
    video = ctx.video
    n = ctx.segments
    seg_s = video.segment_s
    cap = model.max_buffer_s
    step = model.sleep_step_s
    rtt = model.rtt_s
    lats = link.trace.latencies_s
    if model.use_trace_latency and any(lats):
        # the default model takes each request's latency from the trace; plan with its mean
        rtt = sum(d * x for d, x in zip(link.trace.durations_s, lats, strict=True)) / link.trace.duration_s
    start_after = rtt if model.rtt_advances_clock else 0.0
    kbps = np.array([b / 1000 for b in video.bitrates_bps])
    sizes = np.array(video.sizes_bytes, dtype=float)
    levels = video.levels
    nbins = int(math.ceil((cap + seg_s) / bin_s)) + 1
    first = model.first_level if model.first_level is not None else None

    def transitions(t: np.ndarray, b: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, ...]:
        """Rebuffer, new buffer and new clock for downloads of ``size`` from states (t, b)."""
        need = link.finish_s(float(t.max()) + start_after, float(size.max())) + cap + seg_s + 1
        times, cum, rates = link.arrays(need)
        ts = t + start_after
        i = np.searchsorted(times, ts, side="right") - 1
        target = cum[i] + (ts - times[i]) * rates[i] + size
        j = np.searchsorted(cum, target, side="left")
        j = np.maximum(j, 1)
        end = times[j - 1] + (target - cum[j - 1]) / rates[j - 1]
        delay = end - ts + rtt
        rebuf = np.maximum(delay - b, 0.0)
        nb = np.maximum(b - delay, 0.0) + seg_s
        over = nb > cap
        if step > 0:
            sleep = np.where(over, np.ceil((nb - cap) / step) * step, 0.0)
        else:
            sleep = np.where(over, nb - cap, 0.0)
        return rebuf, nb - sleep, end + sleep

    # segment 0: the model's first level, or every level when the algorithm may choose
    q0 = np.array([first] if first is not None else list(range(levels)))
    t0 = np.zeros(len(q0))
    b0 = np.zeros(len(q0))
    rebuf, b, t = transitions(t0, b0, sizes[q0, 0])
    value = np.zeros(len(q0)) if model.skip_first_in_score else kbps[q0] / 1000 - REBUFFER_PENALTY * rebuf
    q = q0
    back: list[tuple[np.ndarray, np.ndarray]] = [(q0, np.full(len(q0), -1))]
    for k in range(1, n):
        # every state x every next level
        s_idx = np.repeat(np.arange(len(q)), levels)
        nq = np.tile(np.arange(levels), len(q))
        rebuf, nb, nt = transitions(t[s_idx], b[s_idx], sizes[nq, k])
        nv = value[s_idx] + kbps[nq] / 1000 - REBUFFER_PENALTY * rebuf - SMOOTH_PENALTY * np.abs(kbps[nq] - kbps[q[s_idx]]) / 1000
        key = nq * nbins + np.minimum(np.floor(nb / bin_s).astype(np.int64), nbins - 1)
        # the best value per (level, bin): a dense scatter-max, then one winner per key
        best = np.full(levels * nbins, -np.inf)
        np.maximum.at(best, key, nv)
        winners = np.flatnonzero(nv == best[key])
        slot = np.full(levels * nbins, -1)
        slot[key[winners]] = winners
        keep = slot[slot >= 0]
        q, b, t, value = nq[keep], nb[keep], nt[keep], nv[keep]
        back.append((q, s_idx[keep]))
    state = int(np.argmax(value))
    levels_plan = [0] * n
    for k in range(n - 1, -1, -1):
        qs, parent = back[k]
        levels_plan[k] = int(qs[state])
        state = int(parent[state])
    return levels_plan


@register("optimal", "offline optimum by dynamic programming over (segment, level, buffer); knows the whole trace", online=False)
class Optimal(Abr):
    """Replays the DP plan."""

    def __init__(self, ctx: AbrContext) -> None:
        super().__init__(ctx)
        self.levels = plan(ctx)

    def choose(self, state: PlayerState) -> Decision:
        return Decision(self.levels[min(state.segment, len(self.levels) - 1)])

    def check_abandon(self, progress: Progress) -> int | None:
        return None


